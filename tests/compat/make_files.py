"""Writes the committed compatibility files: fixed images coded with the shipped weights.

Run once per shipped weights (``python tests/compat/make_files.py``), never to "fix" a failing test:
the files stand for users' data, which later versions must keep decoding to the same pixels.
Each ``<weights id>-<image>-q<quality>.vae`` comes with ``.png``, its fp32 decode when written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage import data

import vaecodec

HERE = Path(__file__).parent


def images() -> dict[str, np.ndarray]:
    """Small crops of images scikit-image ships (RGB and grayscale)."""
    return {"astronaut": data.astronaut()[40:136, 180:308], "camera": data.camera()[100:164, 200:296]}


CASES = (("astronaut", 0), ("astronaut", 100), ("camera", 50))


def main() -> None:
    codec = vaecodec.Codec(precision="fp32")
    for name, quality in CASES:
        stem = f"{codec.weights_id.hex()}-{name}-q{quality}"
        coded = codec.compress(images()[name], quality)
        (HERE / f"{stem}.vae").write_bytes(coded)
        codec.decompress(coded).save(HERE / f"{stem}.png")
        print(stem, len(coded))


if __name__ == "__main__":
    main()
