"""LPIPS, W/W+ projection, pivotal tuning and saved inversions (not built yet)."""
