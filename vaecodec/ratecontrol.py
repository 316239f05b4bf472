"""Rate control: the quality that meets a file-size, bits-per-pixel or PSNR target.

A pure search over the header's integer qualities (``vaecodec.model.rate_levels.QUALITY_STEPS``):
the caller gives a function that codes at a quality (re-using its analysis transforms, so each
probe only re-quantizes and entropy-codes the latent) and, for a PSNR target, one that scores a
file. File size and fidelity grow with quality, so a bisection over the 0.01 steps finds the answer
in about 14 probes. Every answer is a measured file: a size target is never exceeded, a PSNR target
is always reached.
"""

from __future__ import annotations

from typing import Callable

from vaecodec.errors import VaecodecError
from vaecodec.model.rate_levels import QUALITY_STEPS

Encode = Callable[[int], bytes]  # header quality (0..QUALITY_STEPS) -> the file


def _bisect(passes: Callable[[int], bool]) -> int:
    """The largest step in 0..QUALITY_STEPS that passes, given that step 0 passes and larger ones fail."""
    low, high = 0, QUALITY_STEPS + 1
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if passes(middle) else (low, middle)
    return low


def fit_size(encode: Encode, max_bytes: int) -> bytes:
    """The file at the highest quality whose size is at most ``max_bytes``."""
    files: dict[int, bytes] = {}

    def fits(step: int) -> bool:
        files[step] = encode(step)
        return len(files[step]) <= max_bytes

    if not fits(0):
        raise VaecodecError(f"cannot fit in {max_bytes} bytes: the smallest file (quality 0) takes {len(files[0])}")
    return files[_bisect(fits)]


def fit_psnr(encode: Encode, psnr_of: Callable[[bytes], float], target_db: float) -> bytes:
    """The file at the lowest quality whose decoded PSNR (``psnr_of`` the file) is at least ``target_db``."""
    files: dict[int, bytes] = {}
    scores: dict[int, float] = {}

    def falls_short(step: int) -> bool:
        files[step] = encode(step)
        scores[step] = psnr_of(files[step])
        return scores[step] < target_db

    if falls_short(QUALITY_STEPS):
        raise VaecodecError(f"cannot reach {target_db:g} dB: the best quality gives {scores[QUALITY_STEPS]:.2f} dB")
    if not falls_short(0):
        return files[0]
    # The step above the last one that falls short was probed: it is the bisection's upper bound.
    return files[_bisect(falls_short) + 1]
