"""The measuring loop: every image through every codec at every quality, saved as it goes.

Results are written after each image (``results.json`` and ``results.csv``, atomically), so an
interrupted run keeps every finished image and its report covers exactly those. Images go one at a
time through all codecs, so partial results still compare all codecs on the same images.

``results.json`` holds: ``dataset`` (folder, image names, whether it is Kodak), ``settings``,
``environment`` (machine, library versions), ``codecs`` (label, knob, version of each),
``skipped`` (codec -> reason), ``records`` (one per image, codec and quality), ``summary`` (per
codec, averaged over the images), ``bd_rate``, ``visual`` (the comparison crops), ``anchors``
(published curves, Kodak only), and ``complete`` (false while running or when stopped early).
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np

from vaecodec.bench import report
from vaecodec.bench.codecs import BenchCodec
from vaecodec.bench.dataset import is_kodak
from vaecodec.bench.metrics import ms_ssim, psnr, ssim
from vaecodec.bench.summary import bd_rates, rounded, summarize
from vaecodec.files import write_output
from vaecodec.errors import VaecodecError
from vaecodec.imageio import read_image

CSV_FIELDS = ("image", "codec", "quality", "bytes", "bpp", "psnr", "ssim", "ms_ssim", "encode_s", "decode_s")


@dataclass(frozen=True)
class VisualSettings:
    """The side-by-side crop: its size, the bpp to match, and which codecs to show."""

    crop: int
    target_bpp: float
    codecs: list[str]


@dataclass(frozen=True)
class BenchConfig:
    """The defaults in ``bench/config.json``, with the published anchors it points to."""

    qualities: dict[str, list[float]]
    repeats: int
    visual: VisualSettings
    plot_max_bpp: float
    anchors: list[dict[str, Any]]

    @classmethod
    def load(cls, path: Path) -> BenchConfig:
        try:
            data = json.loads(path.read_text())
            anchors = json.loads((path.parent / data["anchors"]).read_text())["curves"] if data.get("anchors") else []
            return cls(qualities=data["qualities"], repeats=int(data["repeats"]),
                       visual=VisualSettings(**data["visual"]), plot_max_bpp=float(data["plot_max_bpp"]),
                       anchors=anchors)
        except FileNotFoundError as exc:
            raise VaecodecError(f"{exc.filename}: no such file (pass --config, see bench/config.json)") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise VaecodecError(f"{path}: not a valid bench configuration ({exc!r})") from None


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    images: list[Path]
    codecs: list[BenchCodec]
    qualities: dict[str, list[float]]
    repeats: int

    @property
    def steps(self) -> int:
        return len(self.images) * sum(len(self.qualities[codec.name]) for codec in self.codecs)


class Progress:
    """A one-line progress bar with an ETA on a terminal; elsewhere a line every tenth of the run."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.start = time.monotonic()
        self.live = stream.isatty()

    def advance(self, label: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.start
        remaining = elapsed / self.done * (self.total - self.done)
        filled = 24 * self.done // self.total
        line = (f"[{'#' * filled}{'.' * (24 - filled)}] {self.done}/{self.total} "
                f"{_clock(elapsed)} elapsed, {_clock(remaining)} left  {label}")
        if self.live:
            self.stream.write("\r" + line[:120].ljust(120))
        elif 10 * self.done // self.total > 10 * (self.done - 1) // self.total:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live and self.done:
            self.stream.write("\n")


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}:{seconds:02d}"


def _median_time(call: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The median wall time of ``repeats`` calls, and the last call's result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def measure(codec: BenchCodec, pixels: np.ndarray, quality: float, repeats: int) -> tuple[dict[str, Any], np.ndarray]:
    """One record (size, quality metrics, median times) and the decoded pixels."""
    encode_s, data = _median_time(lambda: codec.encode(pixels, quality), repeats)
    decode_s, decoded = _median_time(lambda: codec.decode(data), repeats)
    if decoded.shape != pixels.shape or decoded.dtype != np.uint8:
        raise VaecodecError(f"{codec.name} decoded a {decoded.shape} {decoded.dtype} image, expected {pixels.shape} uint8")
    values = {
        "bytes": len(data), "bpp": 8 * len(data) / (pixels.shape[0] * pixels.shape[1]),
        "psnr": psnr(pixels, decoded), "ssim": ssim(pixels, decoded), "ms_ssim": ms_ssim(pixels, decoded),
        "encode_s": encode_s, "decode_s": decode_s,
    }
    return {"codec": codec.name, "quality": quality, **{k: rounded(k, v) for k, v in values.items()}}, decoded


def environment() -> dict[str, dict[str, Any]]:
    """The machine and the library versions the figures depend on."""
    import matplotlib
    import onnxruntime
    import PIL
    import scipy
    import skimage

    import vaecodec
    from vaecodec.engine import installed
    from vaecodec.threads import threads

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    versions = {"python": platform.python_version(), "vaecodec": vaecodec.__version__,
                "onnxruntime": onnxruntime.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
                "scikit-image": skimage.__version__, "scipy": scipy.__version__, "matplotlib": matplotlib.__version__}
    for optional in ("openvino", "torch"):  # the engines of the extras, where installed
        if installed(optional):
            versions[optional] = importlib.import_module(optional).__version__
    return {
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "vaecodec threads": threads(), "system": platform.platform()},
        "versions": versions,
    }


def new_results(plan: Plan, skipped: dict[str, str], config: BenchConfig, folder: Path,
                command: str, threads: int) -> dict[str, Any]:
    """A results object with everything but the measurements (published anchors only for Kodak)."""
    kodak = is_kodak(plan.images)
    return {
        "command": command,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": False,
        "dataset": {"folder": str(folder), "images": [p.name for p in plan.images], "kodak": kodak},
        "settings": {"codecs": [c.name for c in plan.codecs], "qualities": {c.name: plan.qualities[c.name] for c in plan.codecs},
                     "repeats": plan.repeats, "threads": threads, "plot_max_bpp": config.plot_max_bpp,
                     "visual": vars(config.visual)},
        "environment": environment(),
        "codecs": {c.name: {"label": c.label, "knob": c.knob, "version": c.version} for c in plan.codecs},
        "skipped": skipped,
        "records": [],
        "visual": None,
        "anchors": config.anchors if kodak else [],
    }


def save_results(results: dict[str, Any], out: Path) -> None:
    """Refresh the averages and BD-rates and write results.json and results.csv."""
    results["summary"] = summarize(results["records"])
    results["bd_rate"] = bd_rates(results["summary"], results["anchors"])
    write_output(str(out / "results.json"), (json.dumps(results, indent=1) + "\n").encode(), force=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(results["records"])
    writer.writerows({"image": "mean", "codec": codec, **row} for codec, rows in results["summary"].items() for row in rows)
    write_output(str(out / "results.csv"), text.getvalue().encode(), force=True)


def _centre_box(pixels: np.ndarray, size: int) -> tuple[int, int, int]:
    size = min(size, *pixels.shape[:2])
    return (pixels.shape[1] - size) // 2, (pixels.shape[0] - size) // 2, size


def _visual(records: list[dict[str, Any]], settings: VisualSettings) -> tuple[float, list[dict[str, Any]]]:
    """The records to show: vaecodec nearest the target bpp (the target itself without vaecodec),
    then every other codec nearest the bpp that gives."""
    def nearest(codec: str, bpp: float) -> dict[str, Any] | None:
        own = [r for r in records if r["codec"] == codec]
        return min(own, key=lambda r: abs(r["bpp"] - bpp)) if own else None

    anchor = nearest("vaecodec", settings.target_bpp)
    target = anchor["bpp"] if anchor else settings.target_bpp
    chosen = [nearest(codec, target) for codec in settings.codecs]
    return target, [record for record in chosen if record is not None]


def _note_load(results: dict[str, Any]) -> None:
    """Keep the highest 1-minute load average seen after an image (the bench's own threads count
    in it): the report says when other work shared the machine, which inflates the times unevenly
    (measured here: beside a one-thread training run on two cores, a plain two-thread encode ran
    about 2.6x slower, an effort encode, whose strips run one per thread, about 2x)."""
    if hasattr(os, "getloadavg"):
        results["highest_load"] = max(results.get("highest_load", 0.0), round(os.getloadavg()[0], 2))


def run(plan: Plan, results: dict[str, Any], out: Path, visual: VisualSettings, show_progress: bool = True) -> dict[str, Any]:
    """Measure ``plan`` into ``results``, saving after each image; whatever stops it (Ctrl-C, an
    error), the images finished so far are saved and reported before it propagates."""
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(plan.steps) if show_progress else None
    try:
        for index, path in enumerate(plan.images):
            pixels = np.asarray(read_image(path).convert("RGB"))
            x, y, size = _centre_box(pixels, visual.crop)
            records, crops = [], {}
            for codec in plan.codecs:
                for quality in plan.qualities[codec.name]:
                    record, decoded = measure(codec, pixels, quality, plan.repeats)
                    records.append({"image": path.name, **record})
                    if index == 0 and codec.name in visual.codecs:
                        crops[codec.name, quality] = decoded[y : y + size, x : x + size]
                    if progress:
                        progress.advance(f"{path.name} {codec.name} {quality:g}")
            results["records"].extend(records)
            if index == 0 and crops:
                target, chosen = _visual(records, visual)
                panels = [(r, crops[r["codec"], r["quality"]]) for r in chosen]
                report.write_visual(out / "visual.png", pixels[y : y + size, x : x + size], panels, results["codecs"])
                results["visual"] = {"image": path.name, "box": [x, y, size], "target_bpp": target,
                                     "panels": [{k: r[k] for k in ("codec", "quality", "bpp", "psnr")} for r in chosen]}
            _note_load(results)
            save_results(results, out)
        results["complete"] = True
    finally:
        if progress:
            progress.close()
        results["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        save_results(results, out)
        if results["records"]:
            report.write_report(results, out)
    return results
