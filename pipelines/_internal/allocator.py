"""Keep a CPU worker's freed memory for its next picture instead of handing it back to the system.

Finishing a picture allocates and frees a few dozen arrays of 1-15 MB (pixels, offsets, filtered
rows). glibc serves blocks that large with fresh ``mmap`` pages and unmaps them on ``free``, so
every picture faults its working set in again, page by page (about 2,500 faults per 1080²
picture; without them a worker finishes 22-24 % more pictures per second, benchmarks/RESULTS.md).
Raising the mmap threshold to its ceiling and the trim threshold above it lets those blocks come
from the heap and stay there: a worker settles at its peak working set (a few hundred MB) and
allocates without faulting.

Only for CPU-stage worker processes (one job, bounded working set); elsewhere, and where the C
library is not glibc, nothing changes.
"""

from __future__ import annotations

import ctypes
import logging
import platform

log = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's ceiling on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024  # free memory kept at the heap's top before it is returned


def keep_freed_memory() -> bool:
    """Tune this process's allocator as the docstring above says; True where it was changed."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt  # the C library the process already runs on: no search for it
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    changed = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    if not changed:
        log.debug("the C library refused the allocator settings: left as they were")
    return changed
