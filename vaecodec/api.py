"""The one-call API: ``compress`` and ``decompress`` with a shared, lazily loaded codec."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import Image

from vaecodec.codec import DEFAULT_QUALITY, Codec
from vaecodec.imageio import ImageLike


@lru_cache(maxsize=4)
def get_codec(weights: str | Path | None = None, device: str = "cpu") -> Codec:
    """A codec for these weights and device, loaded once per process."""
    return Codec(weights, device)


def compress(image: ImageLike, quality: float = DEFAULT_QUALITY) -> bytes:
    """Compress a PIL image, a uint8 array (HxWx3 or HxW) or a CxHxW float tensor to .vae bytes.

    ``quality`` runs from 0 to 100 like JPEG's: higher gives larger files and better images.
    """
    return get_codec().compress(image, quality)


def decompress(data: bytes) -> Image.Image:
    """Decompress .vae bytes to a PIL image (mode RGB, or L for grayscale originals)."""
    return get_codec().decompress(data)
