"""Timing and peak-memory helpers shared by the benchmarks (Linux; no GPU needed).

Peak memory is the process's resident set size, sampled every millisecond while the
measured function runs, minus what was resident just before. glibc is told to serve
every allocation over 64 KiB with mmap, so freed tensors leave the resident set at once
and one measurement does not inherit another's high-water mark.
"""

import ctypes
import os
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The op-by-op restatement of NVIDIA's route (tests/stylegan_reference.py) is a test oracle,
# kept out of the installed package; the benchmarks measure against it.
sys.path.insert(1, os.path.join(ROOT, 'tests'))

_PAGE = os.sysconf('SC_PAGE_SIZE')
try:
    _libc = ctypes.CDLL('libc.so.6')
    _libc.mallopt(-3, 64 * 1024)        # M_MMAP_THRESHOLD: fixed, so frees return memory to the OS
except OSError:                         # not glibc: measurements are still taken, just coarser
    _libc = None


def rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * _PAGE


def trim() -> None:
    import gc
    gc.collect()
    if _libc is not None:
        _libc.malloc_trim(0)


class PeakRSS:
    """with PeakRSS() as m: ...;  m.peak = highest resident bytes above the starting level."""

    def __enter__(self):
        trim()
        self.base = rss_bytes()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes() - self.base)
            time.sleep(0.001)

    def __exit__(self, *exc):
        self.peak = max(self.peak, rss_bytes() - self.base)
        self._stop.set()
        self._thread.join()
        return False


def median_seconds(fn, repeat: int = 3, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def mib(n: int) -> str:
    return f'{n / 2**20:8.0f} MiB'


def measure(fn, repeat: int = 3):
    """(median seconds of `repeat` calls of fn, the peak memory of one more call, bytes)."""
    seconds = median_seconds(fn, repeat=repeat)
    with PeakRSS() as m:
        fn()
    return seconds, m.peak
