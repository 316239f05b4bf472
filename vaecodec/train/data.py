"""Training data: photos held in memory, random crops drawn in proportion to each photo's area.

A fixed, name-hashed subset of the folder is held out for validation, so the same split holds on
every machine and in every session without a file listing it.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vaecodec.errors import VaecodecError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm"}
VALIDATION_EVERY = 16  # one photo in this many (by name hash) is held out for validation


def is_validation(path: Path) -> bool:
    return zlib.crc32(path.name.encode()) % VALIDATION_EVERY == 0


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def split_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """(training, validation) photos of a folder."""
    images = list_images(folder)
    return [p for p in images if not is_validation(p)], [p for p in images if is_validation(p)]


def _load_rgb(path: Path, rng: np.random.Generator, min_side: int) -> np.ndarray:
    """Load as RGB; JPEG sources get a light random downscale that washes out block artefacts."""
    with Image.open(path) as im:
        im = im.convert("RGB")
        if is_lossy(path):
            factor = rng.uniform(0.6, 1.0)
            size = (max(min_side, round(im.width * factor)), max(min_side, round(im.height * factor)))
            im = im.resize(size, Image.LANCZOS)
        return np.asarray(im)


def is_lossy(path: Path) -> bool:
    return path.suffix.lower() in {".jpg", ".jpeg"}


class CropSampler:
    """Draws batches of random crops (uint8 photos in memory, float tensors out).

    Photos are drawn in proportion to their area, lossless ones (PNG: downscaled, clean, the most
    like the photos users code) times ``clean_weight``: the JPEG sources carry their block artefacts.
    """

    def __init__(self, paths: list[Path], crop: int, seed: int = 0, clean_weight: float = 1.0) -> None:
        if not paths:
            raise VaecodecError("no training images found")
        if not clean_weight > 0:
            raise VaecodecError(f"--clean-weight must be positive, not {clean_weight:g}")
        rng = np.random.default_rng(seed)
        loaded = [(_load_rgb(p, rng, crop), 1.0 if is_lossy(p) else clean_weight) for p in paths]
        loaded = [(im, weight) for im, weight in loaded if min(im.shape[:2]) >= crop]
        if not loaded:
            raise VaecodecError(f"no training image is at least {crop}x{crop}")
        self.images = [im for im, _ in loaded]
        areas = np.array([im.shape[0] * im.shape[1] * weight for im, weight in loaded], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.crop = crop
        self.rng = rng

    def batch(self, size: int) -> torch.Tensor:
        crops = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)
        for i, k in enumerate(self.rng.choice(len(self.images), size=size, p=self.weights)):
            im = self.images[k]
            top = self.rng.integers(0, im.shape[0] - self.crop + 1)
            left = self.rng.integers(0, im.shape[1] - self.crop + 1)
            crop = im[top : top + self.crop, left : left + self.crop]
            crops[i] = crop[:, ::-1] if self.rng.random() < 0.5 else crop
        return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255)
