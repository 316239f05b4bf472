"""The one-call API: ``compress`` and ``decompress`` with shared, lazily loaded CPU codecs."""

from __future__ import annotations

from PIL import Image

from vaecodec.codec import get_codec
from vaecodec.effort import DEFAULT_EFFORT
from vaecodec.imageio import ImageLike
from vaecodec.tunes import DEFAULT_TUNE


def compress(
    image: ImageLike,
    quality: float | None = None,
    *,
    size: int | None = None,
    bpp: float | None = None,
    psnr: float | None = None,
    precision: str = "auto",
    effort: int = DEFAULT_EFFORT,
    tune: str = DEFAULT_TUNE,
) -> bytes:
    """Compress a PIL image, a uint8 array or a CxHxW float tensor in [0, 1] to .vae bytes.

    ``quality`` runs from 0 to 100 like JPEG's (default 75): higher gives larger files and better
    images. Instead, ``size`` (bytes), ``bpp`` or ``psnr`` (dB) pick the quality that meets them:
    the largest file within the size, or the smallest that reaches the PSNR. ``precision`` of the
    transforms: "auto" (bf16 where the engine and the CPU run it natively), "fp32" or "bf16".
    ``effort`` (1-9, default 1): higher spends encode time for a smaller file at the same quality
    (``vaecodec.effort``). ``tune``: the weights, "psnr" (the default) or "ssim" (trained for
    MS-SSIM; ``vaecodec.tunes``); any file decodes with ``decompress`` whatever its tune.
    """
    return get_codec(precision=precision, tune=tune).compress(image, quality, size=size, bpp=bpp, psnr=psnr,
                                                              effort=effort)


def decompress(data: bytes, *, precision: str = "auto") -> Image.Image:
    """Decompress .vae bytes to a PIL image (mode RGB, or L for grayscale originals)."""
    return get_codec(precision=precision).decompress(data)
