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

    def draws(self, size: int) -> list[tuple[int, int, int, bool]]:
        """(photo, top, left, mirrored) of each crop of a batch, from the sampler's seeded generator."""
        draws = []
        for k in self.rng.choice(len(self.images), size=size, p=self.weights):
            im = self.images[k]
            top = int(self.rng.integers(0, im.shape[0] - self.crop + 1))
            left = int(self.rng.integers(0, im.shape[1] - self.crop + 1))
            draws.append((int(k), top, left, bool(self.rng.random() < 0.5)))
        return draws

    def batch(self, size: int) -> torch.Tensor:
        crops = np.empty((size, self.crop, self.crop, 3), dtype=np.uint8)
        for i, (k, top, left, mirrored) in enumerate(self.draws(size)):
            crop = self.images[k][top : top + self.crop, left : left + self.crop]
            crops[i] = crop[:, ::-1] if mirrored else crop
        return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255)


class DeviceCropSampler(CropSampler):
    """``CropSampler`` with the photos held on the training device (uint8) and the crops cut there.

    The draws (photo, offset, mirror) are ``CropSampler``'s, made on the CPU from the same seeded
    generator, so the same seed gives exactly the same crops; only the cutting, the mirroring and
    the conversion to float run on the device, and the batch comes out there in ``memory_format``,
    with no copy from the host but the few draws.
    """

    def __init__(self, paths: list[Path], crop: int, seed: int = 0, clean_weight: float = 1.0,
                 device: torch.device | str = "cpu", memory_format: torch.memory_format = torch.contiguous_format) -> None:
        super().__init__(paths, crop, seed=seed, clean_weight=clean_weight)
        self.device = torch.device(device)
        self.memory_format = memory_format
        self.images = [torch.tensor(im, dtype=torch.uint8, device=self.device) for im in self.images]  # H x W x 3
        self._crops: torch.Tensor | None = None  # the uint8 batch, reused from step to step

    def batch(self, size: int) -> torch.Tensor:
        if self._crops is None or self._crops.shape[0] != size:
            self._crops = torch.empty((size, self.crop, self.crop, 3), dtype=torch.uint8, device=self.device)
        crops, mirrored = self._crops, []
        for i, (k, top, left, mirror) in enumerate(self.draws(size)):
            crops[i].copy_(self.images[k][top : top + self.crop, left : left + self.crop])
            if mirror:
                mirrored.append(i)
        if mirrored:
            index = torch.tensor(mirrored, device=self.device)
            crops[index] = crops[index].flip(2)
        # N x H x W x 3 permuted is channels-last already; float() keeps that layout
        return crops.permute(0, 3, 1, 2).float().div_(255).contiguous(memory_format=self.memory_format)
