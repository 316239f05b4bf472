"""The figures of the README's "Datasets at scale": shards of .vae files against PNG and JPEG
shards of the same photos, the speed of one core with the share of the coding that stays on the
CPU, and a Ray Data run on this machine.

    python bench/scripts/datasets_at_scale.py --kodak ../shared/data/kodak --train ../shared/data/train --ray

Each folder's photos are coded at ``--quality`` (75, the default) on one thread (the codec's
``set_threads(1)``: its engine's and its integer networks'), and written
as sets of tar shards with ``vaecodec.shards.ShardWriter``: the .vae files, PNG (the file itself
where it is a PNG, else saved by Pillow) and JPEG (saved by Pillow, 4:2:0, at each
``--jpeg-quality``). PSNRs are against the photo as read. Speeds are per CPU second of this process
(``time.process_time``, on one thread), which a busy machine disturbs less than wall time;
both are printed. "The latent coder" is the time in ``HyperpriorCoder`` (the integer entropy
parameters and the ANS coder), which runs on the CPU whatever the networks' device; the rest is the
float transforms and pixel handling, what ``--device cuda`` moves to a GPU.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

import vaecodec
from vaecodec.cli.batch import image_suffixes
from vaecodec.codec import get_codec
from vaecodec.imageio import read_image
from vaecodec.metrics import psnr
from vaecodec.shards import ShardWriter, sample_key
from vaecodec.threads import set_threads


class Stopwatch:
    """CPU seconds spent inside some methods of a class."""

    def __init__(self, owner: type, names: tuple[str, ...]) -> None:
        self.seconds = 0.0
        for name in names:
            setattr(owner, name, self._timed(getattr(owner, name)))

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.process_time() - start

        return timed


def coder_watch() -> Stopwatch | None:
    try:
        from vaecodec.latent.hyperprior import HyperpriorCoder
    except ImportError:
        return None
    return Stopwatch(HyperpriorCoder, ("prepare", "encode", "decode"))


def encoded(image: Image.Image, fmt: str, file: Path | None = None, **options: Any) -> bytes:
    """The file itself if it is already in ``fmt``, else the image saved in it."""
    if file is not None and Image.open(file).format == fmt:
        return file.read_bytes()
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt, **options)
    return buffer.getvalue()


def measure(folder: Path, files: list[Path], quality: float, jpeg_qualities: list[int], out: Path) -> dict[str, Any]:
    codec = get_codec()
    watch = coder_watch()
    kinds = ["PNG", *(f"JPEG q{q}" for q in jpeg_qualities), f".vae q{quality:g}"]
    writers = {kind: ShardWriter(str(out / f"{folder.name}-{i}-%06d.tar"), max_bytes=10**12, max_files=10**6)
               for i, kind in enumerate(kinds)}
    psnrs: dict[str, list[float]] = {kind: [] for kind in kinds[1:]}
    pixels = 0
    wall = {"read": 0.0, "encode": 0.0, "decode": 0.0}
    cpu = dict(wall)
    coding = {"encode": 0.0, "decode": 0.0}
    for file in files:
        outputs: dict[str, Any] = {}
        for step in ("read", "encode", "decode"):
            before = watch.seconds if watch else float("nan")
            start, start_cpu = time.perf_counter(), time.process_time()
            if step == "read":
                image = read_image(file)
            elif step == "encode":
                vae = codec.compress(image, quality)
            else:
                outputs[kinds[-1]] = np.asarray(codec.decompress(vae).convert("RGB"))
            wall[step] += time.perf_counter() - start
            cpu[step] += time.process_time() - start_cpu
            if step in coding:
                coding[step] += watch.seconds - before if watch else float("nan")
        reference = np.asarray(image.convert("RGB"))
        pixels += image.width * image.height
        key = sample_key(str(file.relative_to(folder)))
        writers["PNG"].add(key, encoded(image, "PNG", file), extension="png")
        for q in jpeg_qualities:
            jpeg = encoded(image, "JPEG", quality=q)
            writers[f"JPEG q{q}"].add(key, jpeg, extension="jpg")
            outputs[f"JPEG q{q}"] = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
        writers[kinds[-1]].add(key, vae)
        for kind, decoded in outputs.items():
            psnrs[kind].append(psnr(reference, decoded))
    sizes = {}
    for kind, writer in writers.items():
        writer.close()
        sizes[kind] = sum(os.path.getsize(name) for name in writer.shards)
    return {"files": len(files), "pixels": pixels, "shard_bytes": sizes, "wall": wall, "cpu": cpu, "coding": coding,
            "psnr": {kind: statistics.mean(values) for kind, values in psnrs.items()}}


def report(name: str, result: dict[str, Any]) -> None:
    sizes, pixels = result["shard_bytes"], result["pixels"]
    png = sizes["PNG"]
    print(f"\n{name}: {result['files']} photos, {pixels / 1e6:.2f} megapixels")
    print("| shards | bytes | bpp | of PNG's | mean PSNR |")
    print("|---|---|---|---|---|")
    for kind, size in sizes.items():
        quality = f"{result['psnr'][kind]:.2f} dB" if kind in result["psnr"] else "lossless"
        print(f"| {kind} | {size:,} | {8 * size / pixels:.3f} | {size / png:.1%} | {quality} |")
    for step in ("read", "encode", "decode"):
        cpu, wall = result["cpu"][step], result["wall"][step]
        share = result["coding"].get(step)
        coding = f"; the latent coder {share / cpu:.0%} of it" if share is not None and share == share else ""
        print(f"{step}: {pixels / cpu / 1e6:.2f} MP per CPU second ({1000 * cpu / result['files']:.0f} ms a photo; "
              f"wall {1000 * wall / result['files']:.0f} ms){coding}")


def ray_run(folder: Path, quality: float, out: Path) -> None:
    import ray

    import vaecodec.ray

    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    started = time.perf_counter()
    files = ray.data.read_binary_files(str(folder), include_paths=True)
    vaecodec.ray.compress(files, quality, actors=1, batch_size=4).write_parquet(str(out / "parquet"))
    written = time.perf_counter()
    table = ray.data.read_parquet(str(out / "parquet"))
    decoded = vaecodec.ray.decompress(table, actors=1, batch_size=4).count()
    done = time.perf_counter()
    ray.shutdown()
    count = len(list(folder.iterdir()))
    print(f"\nRay Data, num_cpus=2, one actor: ray.init {started - start:.1f} s; read + compress + Parquet of "
          f"{count} files {written - started:.1f} s ({count / (written - started):.2f} files/s, actor start included); "
          f"read Parquet + decompress {decoded} rows {done - written:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kodak", type=Path, help="a folder of photos measured whole")
    parser.add_argument("--train", type=Path, help="a folder of photos of which every k-th is measured")
    parser.add_argument("--train-count", type=int, default=48)
    parser.add_argument("--quality", type=float, default=75)
    parser.add_argument("--jpeg-quality", type=int, nargs="+", default=[90, 75])
    parser.add_argument("--ray", action="store_true", help="also time a Ray Data run over --kodak")
    args = parser.parse_args()
    set_threads(1)
    codec = get_codec()
    print(f"vaecodec {vaecodec.__version__}, weights {codec.weights_id.hex()}, {codec.engine} {codec.precision}, "
          f"1 thread, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as scratch:
        for folder, take in ((args.kodak, None), (args.train, args.train_count)):
            if folder is None:
                continue
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in image_suffixes())
            if take is not None:
                files = files[:: max(1, len(files) // take)][:take]
            report(folder.name, measure(folder, files, args.quality, args.jpeg_quality, Path(scratch)))
        if args.ray and args.kodak is not None:
            ray_run(args.kodak, args.quality, Path(scratch))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
