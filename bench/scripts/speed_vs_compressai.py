"""Encode and decode time of vaecodec against CompressAI's bmshj2018-hyperprior, in one run.

    pip install compressai   # not a vaecodec dependency; only this comparison needs it
    python bench/scripts/speed_vs_compressai.py /path/to/kodak/kodim01.png --threads 2

Both codecs run in this process with the same thread count (torch's, and vaecodec's strips), on the
same photo, and the median of several repeats is printed (vaecodec on each engine installed, at
its default precision; real bitstreams both: CompressAI's rANS coder, vaecodec's constriction coder). CompressAI's pretrained weights are used when its cache has them or the
network allows the download; otherwise its untrained network is timed (the same convolutions, so
the same network time; its entropy coding then sees untrained statistics), and the output says so.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import torch
from PIL import Image

import vaecodec
from vaecodec.engine import installed
from vaecodec.threads import set_threads


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    work()  # warm-up: first calls allocate and pick kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compressai_model(quality: int) -> tuple[torch.nn.Module, str]:
    from compressai.zoo import bmshj2018_hyperprior

    try:
        return bmshj2018_hyperprior(quality=quality, pretrained=True).eval(), "pretrained"
    except Exception as exc:  # no cached weights and no network
        model = bmshj2018_hyperprior(quality=quality, pretrained=False).eval()
        model.update(force=True)
        return model, f"untrained ({type(exc).__name__}: pretrained weights unavailable)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quality", type=float, default=75, help="vaecodec quality")
    parser.add_argument("--compressai-quality", type=int, default=4, help="CompressAI quality (1-8)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_threads(args.threads)
    pixels = np.asarray(Image.open(args.image).convert("RGB"))
    height, width = pixels.shape[:2]

    rows = []
    for engine in ("onnxruntime", "openvino", "torch"):
        if not installed(engine):
            continue
        codec = vaecodec.Codec(engine=engine)
        data = codec.compress(pixels, args.quality)
        rows.append((f"vaecodec ({engine})", f"weights {codec.weights_id.hex()}, {codec.precision}",
                     8 * len(data) / (height * width),
                     median_seconds(lambda: codec.compress(pixels, args.quality), args.repeats),
                     median_seconds(lambda: codec.decompress(data), args.repeats)))

    model, note = compressai_model(args.compressai_quality)
    x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255
    pad = (0, -width % 64, 0, -height % 64)  # CompressAI's models need multiples of 64

    def compressai_encode() -> dict:
        with torch.no_grad():
            return model.compress(torch.nn.functional.pad(x, pad))

    coded = compressai_encode()

    def compressai_decode() -> torch.Tensor:
        with torch.no_grad():
            return model.decompress(coded["strings"], coded["shape"])["x_hat"][..., :height, :width]

    size = sum(len(s[0]) for s in coded["strings"])
    rows.append(("bmshj2018-hyperprior", note, 8 * size / (height * width),
                 median_seconds(compressai_encode, args.repeats), median_seconds(compressai_decode, args.repeats)))

    print(f"{args.image}: {width}x{height}, {args.threads} threads, median of {args.repeats}")
    print(f"{'codec':22} {'bpp':>6} {'encode s':>9} {'decode s':>9}  note")
    for name, note, bpp, encode, decode in rows:
        print(f"{name:22} {bpp:6.3f} {encode:9.3f} {decode:9.3f}  {note}")


if __name__ == "__main__":
    main()
