"""Batches: one recipe over many photos, resumable, nothing lost and nothing done twice.

    import photodrag
    result = photodrag.batch('retouch.yaml')              # or a dict, or a Recipe
    result = photodrag.batch('retouch.yaml', resume=True) # after a crash, a kill or Ctrl-C
    plan = photodrag.batch('retouch.yaml', dry_run=True)  # photos, faces found, edits; nothing inverted

The room above the edit chain for many photos: the recipe (`recipe`, docs/batch.md), the run
and its manifest (`run`). It calls `photodrag.pipeline.edit` once a photo.
"""

from .run import BatchResult, Recipe, RecipeError, batch, load_recipe

__all__ = ['batch', 'load_recipe', 'Recipe', 'RecipeError', 'BatchResult']
