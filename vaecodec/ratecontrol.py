"""Rate control: the quality that meets a file-size, bits-per-pixel or PSNR target.

A pure search over the header's integer qualities (``vaecodec.model.rate_levels.QUALITY_STEPS``):
the caller gives a function that codes at a quality (re-using its analysis transforms, so each
probe only re-quantizes and entropy-codes the latent) and, for a PSNR target, one that scores a
file. File size and fidelity grow with quality, so a bisection over the 0.01 steps finds the answer
in about 14 probes. Every answer is a measured file: a size target is never exceeded, a PSNR target
is always reached.

With an encode effort above the default, the caller also gives ``refine``, which codes at a quality
with the latent optimised for the image (``vaecodec.effort``): seconds per call, against
milliseconds per plain probe, so the search runs on plain files and only its answer is refined.
Refining usually lowers the size and raises the PSNR at a quality, but not always, so the refined
file is checked against the target: if it misses, the plain search runs again for a target moved by
the miss (a size scaled down by the overshoot, a PSNR raised by the shortfall) and that quality is
refined, up to ``REFINE_TRIES`` refinements, after which the plain file is the answer. The cost is
the search plus usually one refinement; the answer keeps the plain search's quality, so a refined
file is typically a few percent under a size target (or above a PSNR target), which a search over
refined files would spend, at a refinement per probe.
"""

from __future__ import annotations

from typing import Callable

from vaecodec.errors import VaecodecError
from vaecodec.model.rate_levels import QUALITY_STEPS

Encode = Callable[[int], bytes]  # header quality (0..QUALITY_STEPS) -> the file
REFINE_TRIES = 3  # refinements before a target falls back to the plain file


def _bisect(passes: Callable[[int], bool]) -> int:
    """The largest step in 0..QUALITY_STEPS that passes, given that step 0 passes and larger ones fail."""
    low, high = 0, QUALITY_STEPS + 1
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if passes(middle) else (low, middle)
    return low


def fit_size(encode: Encode, max_bytes: int, refine: Encode | None = None) -> bytes:
    """The file at the highest quality whose size is at most ``max_bytes``; refined if ``refine``
    is given and its file fits too (see the module docstring)."""
    step, plain = _fit_size(encode, max_bytes)
    if refine is None:
        return plain
    target = max_bytes
    for _ in range(REFINE_TRIES):
        refined = refine(step)
        if len(refined) <= max_bytes:
            return refined
        target = int(target * max_bytes / len(refined))
        try:
            lower = _fit_size(encode, target)[0]
        except VaecodecError:
            break
        step = min(lower, step - 1)
        if step < 0:
            break
    return plain


def _fit_size(encode: Encode, max_bytes: int) -> tuple[int, bytes]:
    files: dict[int, bytes] = {}

    def fits(step: int) -> bool:
        files[step] = encode(step)
        return len(files[step]) <= max_bytes

    if not fits(0):
        raise VaecodecError(f"cannot fit in {max_bytes} bytes: the smallest file (quality 0) takes {len(files[0])}")
    step = _bisect(fits)
    return step, files[step]


def fit_psnr(encode: Encode, psnr_of: Callable[[bytes], float], target_db: float,
             refine: Encode | None = None) -> bytes:
    """The file at the lowest quality whose decoded PSNR (``psnr_of`` the file) is at least
    ``target_db``; refined if ``refine`` is given and its file reaches the target too."""
    step, plain = _fit_psnr(encode, psnr_of, target_db)
    if refine is None:
        return plain
    target = target_db
    for _ in range(REFINE_TRIES):
        refined = refine(step)
        score = psnr_of(refined)
        if score >= target_db:
            return refined
        target += target_db - score
        try:
            higher = _fit_psnr(encode, psnr_of, target)[0]
        except VaecodecError:
            break
        step = max(higher, step + 1)
        if step > QUALITY_STEPS:
            break
    return plain


def _fit_psnr(encode: Encode, psnr_of: Callable[[bytes], float], target_db: float) -> tuple[int, bytes]:
    files: dict[int, bytes] = {}
    scores: dict[int, float] = {}

    def falls_short(step: int) -> bool:
        files[step] = encode(step)
        scores[step] = psnr_of(files[step])
        return scores[step] < target_db

    if falls_short(QUALITY_STEPS):
        raise VaecodecError(f"cannot reach {target_db:g} dB: the best quality gives {scores[QUALITY_STEPS]:.2f} dB")
    if not falls_short(0):
        return 0, files[0]
    # The step above the last one that falls short was probed: it is the bisection's upper bound.
    step = _bisect(falls_short) + 1
    return step, files[step]
