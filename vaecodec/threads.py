"""How many threads the codec runs: its strips at once (or each strip's, on an engine that runs them
one at a time), and the threads of its integer networks.

One setting, read by the engines (``vaecodec.engine.tiles``) and the integer networks
(``vaecodec.model.fixed_point``), which import nothing else of vaecodec's to read it.
"""

from __future__ import annotations

import os

# Above this many pixels an image's strips run one at a time, and its integer networks on one
# thread: each strip in flight costs memory (and each Python thread a heap of glibc's), and memory
# is what bounds large photos. (An engine whose strips run one at a time on all the threads,
# ``TiledTransforms.threads_per_strip``, keeps them for large images too.)
PARALLEL_MAX_PIXELS = 8_000_000

_threads: int | None = None


def set_threads(count: int | None) -> None:
    """How many threads the codec runs (None: one per CPU this process may use); worker processes
    that are themselves the parallelism set 1."""
    global _threads
    _threads = count


def threads_for(pixels: int) -> int:
    """Threads for an image of this many pixels: ``threads()``, or one for the largest."""
    return threads() if pixels <= PARALLEL_MAX_PIXELS else 1


def threads() -> int:
    """The codec's threads: ``set_threads``'s, else ``OMP_NUM_THREADS`` (which Ray sets to an actor's
    CPUs), else the CPUs this process may use."""
    configured = os.environ.get("OMP_NUM_THREADS", "")
    return _threads or (int(configured) if configured.isdigit() and int(configured) > 0 else len(os.sched_getaffinity(0)))
