"""Validation: real coded bits per pixel, PSNR and MS-SSIM over a folder of photos, at a few qualities.

Always in fp32: validation compares weights, and bf16's rounding (a few hundredths of a dB,
``vaecodec.model.precision``) would blur differences of that size between them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vaecodec.codec import Codec
from vaecodec.extras import BENCH, needs_extra
from vaecodec.metrics import psnr
from vaecodec.model.hyperprior import HyperpriorModel
from vaecodec.model.weights import serialize_weights, weights_from_bytes
from vaecodec.train.data import split_images

EVAL_QUALITIES = (0, 25, 50, 75, 100)


def evaluate_codec(codec: Codec, paths: list[Path], qualities=EVAL_QUALITIES,
                   with_ms_ssim: bool = False) -> dict[float, tuple[float, ...]]:
    """Mean (bpp, PSNR) per quality, the rate from the real file sizes; with ``with_ms_ssim``
    also the mean MS-SSIM in dB (the bench's, ``vaecodec.bench.metrics``: the bench extra)."""
    if with_ms_ssim:
        with needs_extra(BENCH):
            from vaecodec.bench.metrics import ms_ssim, ms_ssim_db
    images = []
    for path in paths:
        with Image.open(path) as im:
            images.append(np.asarray(im.convert("RGB")))
    results = {}
    for quality in qualities:
        rows = []
        for image in images:
            data = codec.compress(image, quality)
            decoded = np.asarray(codec.decompress(data))
            row = [8 * len(data) / (image.shape[0] * image.shape[1]), psnr(image, decoded)]
            rows.append(row + [ms_ssim_db(ms_ssim(image, decoded))] if with_ms_ssim else row)
        results[quality] = tuple(float(value) for value in np.mean(rows, axis=0))
    return results


def evaluate_model(model: HyperpriorModel, paths: list[Path]) -> dict[float, tuple[float, float]]:
    """Evaluate a model in training exactly as it would ship (half-precision weights, frozen tables)."""
    shipped = weights_from_bytes(serialize_weights(model))
    return evaluate_codec(Codec(shipped, next(model.parameters()).device, precision="fp32"), paths)


def validate(folder: Path, weights: Path | None = None) -> str:
    """A TRAINING.md log row: mean coded bpp / PSNR / MS-SSIM (dB) on the whole validation split
    of ``folder``."""
    codec = Codec(weights, precision="fp32")
    results = evaluate_codec(codec, split_images(folder)[1], with_ms_ssim=True)
    meta = codec.metadata
    cells = [f"{bpp:.3f} / {value:.2f} / {similarity:.2f}" for bpp, value, similarity in results.values()]
    return " | ".join([f"`{codec.weights_id.hex()}`", str(meta.get("steps", "?")), str(meta.get("hours", "?")),
                       str(meta.get("device", "?")), *cells])
