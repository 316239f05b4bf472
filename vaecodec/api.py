"""The one-call API: ``compress`` and ``decompress`` with a shared, lazily loaded codec."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from PIL import Image

from vaecodec.codec import Codec, usable_device
from vaecodec.imageio import ImageLike


def get_codec(weights: str | Path | None = None, device: str | torch.device = "cpu") -> Codec:
    """A codec for these weights and device, loaded once per process.

    Equal arguments spelled differently (``"cpu"`` or ``torch.device("cpu")``, str or Path) share
    one codec, so unpickled codecs reuse the one the process already has.
    """
    return _load(None if weights is None else Path(weights), usable_device(device))


@lru_cache(maxsize=4)
def _load(weights: Path | None, device: torch.device) -> Codec:
    return Codec(weights, device)


def compress(
    image: ImageLike,
    quality: float | None = None,
    *,
    size: int | None = None,
    bpp: float | None = None,
    psnr: float | None = None,
) -> bytes:
    """Compress a PIL image, a uint8 array or a CxHxW float tensor in [0, 1] to .vae bytes.

    ``quality`` runs from 0 to 100 like JPEG's (default 75): higher gives larger files and better
    images. Instead, ``size`` (bytes), ``bpp`` or ``psnr`` (dB) pick the quality that meets them:
    the largest file within the size, or the smallest that reaches the PSNR.
    """
    return get_codec().compress(image, quality, size=size, bpp=bpp, psnr=psnr)


def decompress(data: bytes) -> Image.Image:
    """Decompress .vae bytes to a PIL image (mode RGB, or L for grayscale originals)."""
    return get_codec().decompress(data)
