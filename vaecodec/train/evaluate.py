"""Validation: real coded bits per pixel and PSNR over a folder of photos, at a few qualities.

Always in fp32: validation compares weights, and bf16's rounding (a few hundredths of a dB,
``vaecodec.model.precision``) would blur differences of that size between them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vaecodec.codec import Codec
from vaecodec.metrics import psnr
from vaecodec.model.hyperprior import HyperpriorModel
from vaecodec.model.weights import serialize_weights, weights_from_bytes
from vaecodec.train.data import split_images

EVAL_QUALITIES = (0, 25, 50, 75, 100)


def evaluate_codec(codec: Codec, paths: list[Path], qualities=EVAL_QUALITIES) -> dict[float, tuple[float, float]]:
    """Mean (bpp, PSNR) per quality, the rate from the real file sizes."""
    images = []
    for path in paths:
        with Image.open(path) as im:
            images.append(np.asarray(im.convert("RGB")))
    results = {}
    for quality in qualities:
        bpps, psnrs = [], []
        for image in images:
            data = codec.compress(image, quality)
            bpps.append(8 * len(data) / (image.shape[0] * image.shape[1]))
            psnrs.append(psnr(image, np.asarray(codec.decompress(data))))
        results[quality] = (float(np.mean(bpps)), float(np.mean(psnrs)))
    return results


def evaluate_model(model: HyperpriorModel, paths: list[Path]) -> dict[float, tuple[float, float]]:
    """Evaluate a model in training exactly as it would ship (half-precision weights, frozen tables)."""
    shipped = weights_from_bytes(serialize_weights(model))
    return evaluate_codec(Codec(shipped, next(model.parameters()).device, precision="fp32"), paths)


def validate(folder: Path, weights: Path | None = None) -> str:
    """A TRAINING.md log row: mean coded bpp / PSNR on the whole validation split of ``folder``."""
    codec = Codec(weights, precision="fp32")
    results = evaluate_codec(codec, split_images(folder)[1])
    meta = codec.metadata
    cells = [f"{bpp:.3f} / {value:.2f}" for bpp, value in results.values()]
    return " | ".join([f"`{codec.weights_id.hex()}`", str(meta.get("steps", "?")), str(meta.get("hours", "?")),
                       str(meta.get("device", "?")), *cells])
