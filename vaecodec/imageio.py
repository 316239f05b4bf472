"""Conversion of the image types users hand us into the model's input, and image files on disk."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from vaecodec.errors import VaecodecError

ImageLike = Union[Image.Image, np.ndarray, torch.Tensor]


def to_tensor(image: ImageLike) -> tuple[torch.Tensor, str]:
    """(3xHxW float tensor in [0, 1], colour mode "RGB" or "L") from a PIL image, array or tensor."""
    if isinstance(image, Image.Image):
        mode = "L" if image.mode in {"L", "1", "I;16", "I", "F", "LA"} else "RGB"
        array = np.asarray(image.convert(mode))
        return to_tensor(array)[0], mode
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise VaecodecError(f"numpy images must be uint8, got {image.dtype}")
        if image.ndim == 2:
            return torch.from_numpy(image.copy()).float().div(255)[None].expand(3, -1, -1), "L"
        if image.ndim == 3 and image.shape[2] == 3:
            return torch.from_numpy(image.copy()).permute(2, 0, 1).float().div(255), "RGB"
        raise VaecodecError(f"numpy images must be HxW or HxWx3, got shape {image.shape}")
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise VaecodecError(f"tensors must be CxHxW with C = 1 or 3, got shape {tuple(image.shape)}")
        if not image.is_floating_point():
            raise VaecodecError(f"tensors must be floating point in [0, 1], got {image.dtype}")
        x = image.detach().float().clamp(0, 1)
        return (x.expand(3, -1, -1), "L") if x.shape[0] == 1 else (x, "RGB")
    raise VaecodecError(f"cannot compress an object of type {type(image).__name__}")


def read_image(path: Path | BinaryIO) -> Image.Image:
    """Open an image file with its EXIF orientation applied."""
    try:
        with Image.open(path) as im:
            im.load()
            return ImageOps.exif_transpose(im)
    except FileNotFoundError:
        raise VaecodecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise VaecodecError(f"{path}: is a directory") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise VaecodecError(f"{path}: not a readable image ({exc})") from None
