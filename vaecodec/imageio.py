"""Conversion of the image types users hand us into what the codec codes, and back.

What is kept of each kind of input:

- RGB and grayscale (L, 1-bit) images are coded as they are; grayscale decodes as grayscale.
- Alpha (RGBA, LA, palette images with transparency) is kept losslessly beside the colour.
- Palette images are expanded to RGB (or RGBA); CMYK, YCbCr, LAB and HSV are converted to RGB with
  Pillow's conversions (a CMYK ICC profile cannot describe the RGB result, so it is dropped).
- 16-bit images (Pillow modes I;16*, I, and uint16 arrays) are reduced to 8 bits: v / 257, rounded;
  32-bit float images (mode F) are taken as 0..255 and clipped.
- The ICC colour profile of RGB and grayscale images is carried through byte for byte.
- Of a file with several frames (an animation, a multi-page TIFF), the first is read;
  ``read_first_frame`` also counts them, for the command line's warning. A PIL image handed to
  ``prepare`` is coded at the frame it is on, as Pillow saves to single-image formats.
"""

from __future__ import annotations

import io
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vaecodec.engine.tiles import to_8_bits
from vaecodec.errors import VaecodecError
from vaecodec.format.container import dimension_problem

if TYPE_CHECKING:  # tensors come from callers that have torch; the codec itself needs none
    import torch

ImageLike = Union[Image.Image, np.ndarray, "torch.Tensor"]

_WIDE_GRAY_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}

# Formats whose further frames are no further pictures, so reading the first drops nothing: an MPO
# (as Pillow opens many cameras' JPEGs) adds previews or depth maps of its first image, and a PSD
# the layers of the composite image that Pillow reads first.
_COMPANION_FRAMES = frozenset({"MPO", "PSD"})


@dataclass
class PreparedImage:
    """An image as the codec sees it: 8-bit colour, and what travels beside it.

    The colour is held as the 8 bits every input but a float tensor already is (a quarter of the
    bytes of floats, and what the decoder puts out and rate control measures against); the
    transforms take it to [0, 1] tile by tile."""

    pixels: np.ndarray  # 3xHxW uint8 (grayscale repeated over the three channels)
    mode: str  # "RGB", "L", "RGBA" or "LA"
    alpha: np.ndarray | None = None  # HxW uint8 for RGBA and LA
    icc_profile: bytes = b""


def prepare(image: ImageLike) -> PreparedImage:
    """A PIL image, a uint8/uint16 array (HxW, HxWx3, HxWx4) or a CxHxW float tensor, ready to code."""
    if isinstance(image, Image.Image):
        return _prepare_pil(image)
    if isinstance(image, np.ndarray):
        return _prepare_array(image)
    if _is_tensor(image):
        if image.dim() != 3 or image.shape[0] not in (1, 3):
            raise VaecodecError(f"tensors must be CxHxW with C = 1 or 3, got shape {tuple(image.shape)}")
        if not image.is_floating_point():
            raise VaecodecError(f"tensors must be floating point in [0, 1], got {image.dtype}")
        x = to_8_bits(image.detach().float().cpu().numpy())  # the decoder's rule for 8 bits
        return PreparedImage(np.broadcast_to(x, (3, *x.shape[1:])), "L") if x.shape[0] == 1 else PreparedImage(x, "RGB")
    raise VaecodecError(f"cannot compress an object of type {type(image).__name__}")


def _is_tensor(image: Any) -> bool:
    """A torch tensor, told without importing torch (which only its holder has loaded)."""
    return type(image).__module__.partition(".")[0] == "torch" and hasattr(image, "is_floating_point")


def _prepare_pil(image: Image.Image) -> PreparedImage:
    icc = image.info.get("icc_profile") or b""
    mode = image.mode
    if mode == "P":
        mode = "RGBA" if "transparency" in image.info else "RGB"
        image = image.convert(mode)
    elif mode == "PA":
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _WIDE_GRAY_MODES:
        array = np.asarray(image, dtype=np.float64)
        array = array if mode == "F" else array / 257
        return _prepare_array(np.clip(np.round(array), 0, 255).astype(np.uint8), icc)
    if mode in {"RGBA", "LA", "RGBa", "La"}:
        base = "LA" if mode.startswith("L") else "RGBA"
        array = np.asarray(image.convert(base))
        return _prepare_array(array if base == "RGBA" else array[..., 0], icc, alpha=array[..., -1])
    if mode in {"L", "1"}:
        return _prepare_array(np.asarray(image.convert("L")), icc)
    if mode != "RGB":
        icc = b""  # the profile described the original colour space
    return _prepare_array(np.asarray(image if mode == "RGB" else image.convert("RGB")), icc)  # no copy to convert


def _prepare_array(array: np.ndarray, icc: bytes = b"", alpha: np.ndarray | None = None) -> PreparedImage:
    if array.dtype == np.uint16:
        array = np.round(array / 257).astype(np.uint8)
    if array.dtype != np.uint8:
        raise VaecodecError(f"numpy images must be uint8 or uint16, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 4:
        return _prepare_array(array[..., :3], icc, alpha=array[..., 3])
    if array.ndim == 2:
        pixels = np.broadcast_to(array[None], (3, *array.shape))  # views: coding only reads them
        mode = "L"
    elif array.ndim == 3 and array.shape[2] == 3:
        pixels = array.transpose(2, 0, 1)
        mode = "RGB"
    else:
        raise VaecodecError(f"numpy images must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    if alpha is not None:
        return PreparedImage(pixels, mode + "A", np.ascontiguousarray(alpha), icc)
    return PreparedImage(pixels, mode, None, icc)


def encode_alpha(alpha: np.ndarray) -> bytes:
    """The alpha plane as a PNG file (lossless, and decodable by any PNG reader)."""
    buffer = io.BytesIO()
    Image.fromarray(alpha, "L").save(buffer, format="PNG")
    return buffer.getvalue()


def decode_alpha(data: bytes, width: int, height: int) -> Image.Image:
    """The alpha plane of a .vae file; its PNG header must match the image before it is decoded."""
    try:
        with _own_pixel_limit(), Image.open(io.BytesIO(data), formats=["PNG"]) as plane:
            if plane.mode != "L" or plane.size != (width, height):
                raise VaecodecError("corrupt .vae file (alpha plane does not match the image)")
            plane.load()
            return plane.copy()
    except VaecodecError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        raise VaecodecError("corrupt .vae file (unreadable alpha plane)") from None


def read_image(path: Path | BinaryIO) -> Image.Image:
    """Open an image file with its EXIF orientation applied; sizes vaecodec cannot code are
    refused from the header, before the pixels are decoded. Of several frames, the first."""
    return read_first_frame(path)[0]


def read_first_frame(path: Path | BinaryIO) -> tuple[Image.Image, int]:
    """``read_image``, and how many frames the file holds: more than 1 for an animated GIF, PNG
    or WebP and a multi-page TIFF, whose later frames are left out, so that callers can say so."""
    name = path if isinstance(path, (str, Path)) else getattr(path, "name", "-")  # a stream may carry a name
    try:
        with _own_pixel_limit(), Image.open(path) as im:
            problem = dimension_problem(*im.size)
            if problem is not None:
                raise VaecodecError(f"{name}: {problem}")
            frames = 1 if im.format in _COMPANION_FRAMES else getattr(im, "n_frames", 1)
            im.load()
            return ImageOps.exif_transpose(im), frames
    except VaecodecError:
        raise
    except FileNotFoundError:
        raise VaecodecError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise VaecodecError(f"{name}: is a directory") from None
    except UnidentifiedImageError:
        raise VaecodecError(f"{name}: not a readable image (unknown format)") from None
    except (Image.DecompressionBombError, OSError, SyntaxError, ValueError, TypeError) as exc:
        # TypeError: Pillow's for a damaged TIFF frame ("Missing dimensions"; found by fuzz/compress.py)
        raise VaecodecError(f"{name}: not a readable image ({exc})") from None


@contextmanager
def _own_pixel_limit() -> Iterator[None]:
    """Pillow's decompression-bomb warning silenced (it would be a second line on stderr):
    vaecodec applies its own limit, MAX_PIXELS, from the image's header."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield
