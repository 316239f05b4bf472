"""Let the C allocator keep freed memory for reuse, instead of handing it back to the system.

Every layer of the transforms allocates fresh activations of tens of megabytes and frees the last
ones. By default glibc gives such blocks back to the kernel at once and takes new ones, so every
page of every activation is faulted in again: measured here, that was about a quarter of the time
to code a 768x512 photo and of a training step. Raising glibc's mmap and trim thresholds keeps
those blocks in the heap. The setting is process-wide, so it is applied only where it pays, and
never over a choice the user made with glibc's own environment variables.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
_applied = 0  # the largest block size set so far: a later, smaller request leaves it


def keep_freed_memory(block_bytes: int) -> bool:
    """Serve blocks up to ``block_bytes`` from the heap, and keep up to twice that free there.

    Returns whether the setting is in force (glibc only, and not where the environment sets it).
    """
    global _applied
    if block_bytes <= _applied:
        return True
    if platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in _ENVIRONMENT):
        return False
    try:
        libc = ctypes.CDLL(None)
        applied = bool(libc.mallopt(M_MMAP_THRESHOLD, block_bytes)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2 * block_bytes))
    except (OSError, AttributeError):
        return False
    if applied:
        _applied = block_bytes
    return applied
