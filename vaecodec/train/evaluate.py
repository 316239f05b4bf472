"""Validation: real coded bits per pixel and PSNR over a folder of photos, at a few qualities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vaecodec.codec import Codec
from vaecodec.metrics import psnr
from vaecodec.model.hyperprior import HyperpriorModel
from vaecodec.model.weights import serialize_weights, weights_from_bytes

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
    return evaluate_codec(Codec(shipped, next(model.parameters()).device), paths)
