"""Whether the core install's engine writes the same files as the torch path, on a folder of photos.

    python bench/scripts/same_bytes.py /path/to/kodak --qualities 25,50,75

Each photo is encoded with ONNX Runtime and with the torch engine in fp32 (the earlier torch path's
transforms; the coder is the same numpy code) at each quality. A float difference between the two
analyses can round a latent element the other way; the script counts the files that differ and,
in them, the symbols that differ (decoded from each file: both decode with either engine).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import vaecodec
from vaecodec.format.container import parse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--qualities", default="25,50,75")
    args = parser.parse_args()
    runtime, torch_path = vaecodec.Codec(engine="onnxruntime"), vaecodec.Codec(engine="torch", precision="fp32")
    files = differing_files = symbols = differing_symbols = 0
    for path in sorted(args.folder.glob("*.png")):
        image = np.asarray(Image.open(path).convert("RGB"))
        for quality in (float(q) for q in args.qualities.split(",")):
            first, second = runtime.compress(image, quality), torch_path.compress(image, quality)
            files += 1
            a, b = (runtime.symbol_information(parse(data))["symbols"] for data in (first, second))
            symbols += a.size
            if first != second:
                differing_files += 1
                differing_symbols += int((a != b).sum())
    print(f"{files} files: {differing_files} differ; {differing_symbols} of {symbols} latent symbols differ "
          f"({differing_symbols / symbols:.2e})")


if __name__ == "__main__":
    main()
