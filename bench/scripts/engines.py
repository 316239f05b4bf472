"""Start-up, speed and memory of the engines, against torch and an earlier vaecodec, in one run.

    python bench/scripts/engines.py /path/to/kodak/kodim23.png [--baseline /path/to/old/checkout]

For each engine this version has here (ONNX Runtime, OpenVINO where installed, torch where
installed), and for an earlier vaecodec checkout (``--baseline``: a folder whose ``vaecodec``
package imports with its weights, run with ``PYTHONPATH`` set to it), it measures in fresh
processes:

- a cold ``vaecodec decode`` of a 256x256 file: wall time and peak resident memory of the whole
  command (interpreter start, imports, weights, decode), the median of ``--runs``;
- in one process, the photo coded at quality 50: encode and decode, the median of ``--runs``
  after a warm-up; ``--rounds`` such processes per engine, the engines in turn, and the median of
  their medians (the machine's speed drifts by minutes).

Each variant runs with ``--threads`` strips at once and as many threads for torch; numpy's BLAS
gets one thread (``OPENBLAS_NUM_THREADS=1``), as the codec's integer networks take it anyway. The
table is printed as Markdown; the README's figures come from it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CODE = textwrap.dedent("""
    import json, statistics, sys, time
    import numpy as np
    from PIL import Image
    engine, threads, runs, photo, precision = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    import vaecodec
    from pathlib import Path
    if (Path(vaecodec.__file__).parent / "engine").is_dir():
        from vaecodec.threads import set_threads
        set_threads(threads)
        codec = vaecodec.Codec(precision=precision) if engine == "baseline" else vaecodec.Codec(engine=engine, precision=precision)
        label = f"{codec.engine} {codec.precision}"
    else:  # an earlier vaecodec: torch
        import torch
        torch.set_num_threads(threads)
        codec = vaecodec.Codec(precision=precision)
        label = f"torch {codec.precision} (earlier vaecodec)"
    image = np.asarray(Image.open(photo).convert("RGB"))
    def median(work):
        work()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            work()
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    data = codec.compress(image, 50)
    print(json.dumps({"label": label, "encode": median(lambda: codec.compress(image, 50)),
                      "decode": median(lambda: codec.decompress(data)), "bytes": len(data)}))
""")


def environment(engine: str, baseline: Path | None, threads: int) -> dict[str, str]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    if engine == "baseline":
        env["PYTHONPATH"] = str(baseline)
    return env


# ``vaecodec decode`` as its console script runs it, printing the process's peak memory at the end.
DECODE = textwrap.dedent("""
    import resource, sys
    from vaecodec.cli.main import main
    status = main(sys.argv[1:])
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    sys.exit(status)
""")


def cold_decode(engine: str, baseline: Path | None, threads: int, runs: int, file: Path) -> tuple[float, float]:
    """Median wall seconds and peak MB of ``vaecodec decode FILE`` in a fresh process."""
    extra = [] if engine == "baseline" else ["--engine", engine]
    walls, peaks = [], []
    for _ in range(runs):
        out = file.with_suffix(".png")
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", DECODE, "decode", str(file), "-o", str(out), "-f", *extra],
                                check=True, env=environment(engine, baseline, threads), capture_output=True, text=True,
                                cwd=file.parent)  # not the checkout: -c puts the working folder first on the path
        walls.append(time.perf_counter() - start)
        peaks.append(int(result.stdout.split()[-1]) / 1024)
    return statistics.median(walls), statistics.median(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo")
    parser.add_argument("--baseline", type=Path, help="an earlier vaecodec checkout to time beside this one")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32"],
                        help="of every variant (fp32: as on a CPU without bf16, where the earlier vaecodec ran fp32)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per engine, in turn (median of their medians)")
    args = parser.parse_args()
    import importlib.util

    engines = ["onnxruntime"] + [name for name in ("openvino", "torch") if importlib.util.find_spec(name)]
    if args.baseline:
        engines.append("baseline")
    from PIL import Image

    import vaecodec

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder) / "small.vae"
        small.write_bytes(vaecodec.Codec(engine="onnxruntime").compress(Image.open(args.photo).convert("RGB").crop((0, 0, 256, 256)), 50))
        timings: dict[str, list[dict]] = {engine: [] for engine in engines}
        for _ in range(args.rounds):  # the engines in turn, so that a slower minute falls on each
            for engine in engines:
                result = subprocess.run([sys.executable, "-c", CODE, engine, str(args.threads), str(args.runs),
                                         str(Path(args.photo).resolve()), args.precision], check=True, capture_output=True,
                                        text=True,
                                        env=environment(engine, args.baseline, args.threads), cwd=folder)
                timings[engine].append(json.loads(result.stdout))
        for engine, runs in timings.items():
            rows.append((engine, {**runs[0], **{key: statistics.median(run[key] for run in runs)
                                                for key in ("encode", "decode")}}))
        colds = {engine: cold_decode(engine, args.baseline, args.threads, args.runs, small) for engine in engines}
    print(f"kodim23 at quality 50 ({rows[0][1]['bytes']} bytes), {args.threads} threads, the median over "
          f"{args.rounds} processes of the median of {args.runs}; cold decode of a 256x256 file\n")
    print("| engine | encode | decode | cold decode | its peak memory |")
    print("|---|---|---|---|---|")
    for engine, timing in rows:
        wall, peak = colds[engine]
        print(f"| {timing['label']} | {timing['encode'] * 1000:.0f} ms | {timing['decode'] * 1000:.0f} ms | "
              f"{wall:.2f} s | {peak:.0f} MB |")


if __name__ == "__main__":
    main()
