"""Rate control: the quality that meets a file-size, bits-per-pixel or PSNR target.

The analysis transforms run once; each probe of the search only re-quantizes and entropy-codes the
latent (and, for a PSNR target, runs the synthesis). File size and fidelity grow with quality, so
a bisection over the header's quality steps (0.01) finds the answer in about 14 probes. Every
answer is a measured file: a size target is never exceeded, a PSNR target is always reached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from vaecodec.errors import VaecodecError
from vaecodec.metrics import psnr

if TYPE_CHECKING:
    from vaecodec.codec import Analysis, Codec

_STEPS = 10000  # qualities 0.00 .. 100.00


def _bisect(passes: Callable[[int], bool]) -> int:
    """The largest step in 0.._STEPS that passes, given that step 0 passes and larger ones fail."""
    low, high = 0, _STEPS + 1
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if passes(middle) else (low, middle)
    return low


def fit_size(codec: Codec, analysis: Analysis, max_bytes: int) -> bytes:
    """The file at the highest quality whose size is at most ``max_bytes``."""
    files: dict[int, bytes] = {}

    def fits(step: int) -> bool:
        files[step] = codec.encode_analysis(analysis, step / 100)
        return len(files[step]) <= max_bytes

    if not fits(0):
        raise VaecodecError(f"cannot fit in {max_bytes} bytes: the smallest file (quality 0) takes {len(files[0])}")
    return files[_bisect(fits)]


def fit_psnr(codec: Codec, analysis: Analysis, reference: np.ndarray, target_db: float) -> bytes:
    """The file at the lowest quality whose decoded PSNR (RGB, 8 bits) is at least ``target_db``."""
    files: dict[int, bytes] = {}
    scores: dict[int, float] = {}

    def falls_short(step: int) -> bool:
        files[step] = codec.encode_analysis(analysis, step / 100)
        scores[step] = psnr(reference, codec.decoded_pixels(files[step]))
        return scores[step] < target_db

    if falls_short(_STEPS):
        raise VaecodecError(f"cannot reach {target_db:g} dB: the best quality gives {scores[_STEPS]:.2f} dB")
    if not falls_short(0):
        return files[0]
    # The step above the last one that falls short was probed: it is the bisection's upper bound.
    return files[_bisect(falls_short) + 1]
