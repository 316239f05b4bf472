"""Tunes: which distortion a set of weights was trained for, by the name users give it.

``--tune psnr`` (the default weights) trades rate against squared error, ``--tune ssim`` against
MS-SSIM. The weights record their distortion (``ModelConfig.distortion``); this table is the one
place that names them, and it loads without torch so the CLI can check a value before any work.
"""

from __future__ import annotations

from vaecodec.errors import VaecodecError

# tune name -> the distortion its weights were trained for
TUNES: dict[str, str] = {"psnr": "mse", "ssim": "ms-ssim"}
DISTORTIONS: tuple[str, ...] = tuple(TUNES.values())
DEFAULT_TUNE = "psnr"
# tune name -> the stem of its packaged weights files (``.pt`` for torch, ``.npz`` for the runtime)
TUNE_WEIGHTS: dict[str, str] = {"psnr": "vaecodec-default", "ssim": "vaecodec-ssim"}


def check_tune(tune: str) -> str:
    """The tune, or a clean error naming the choices."""
    if tune not in TUNES:
        raise VaecodecError(f"unknown tune {tune!r}: choose one of {', '.join(TUNES)}")
    return tune


def tune_of(distortion: str) -> str:
    """The tune name of weights trained for ``distortion``."""
    return next(name for name, value in TUNES.items() if value == distortion)
