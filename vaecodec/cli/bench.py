"""``vaecodec bench``: its options, and the step from them to a measured run and a report.

Heavy imports (the engines, matplotlib, scikit-image) wait until the command runs, so the rest of the
command line stays quick to start.
"""

from __future__ import annotations

import argparse
from importlib import resources
import shlex
import sys
from pathlib import Path

from vaecodec.extras import BENCH, needs_extra
from vaecodec.cli.options import whole_number
from vaecodec.errors import UsageError, VaecodecError

DEFAULT_THREADS = 2


def _default_config() -> Path:
    """bench/config.json of the source tree, installed as the package vaecodec.bench_config (see
    pyproject.toml); looked up when the bench runs, so the rest of the CLI works from a bare tree."""
    return Path(str(resources.files("vaecodec.bench_config"))) / "config.json"


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() else value


def parse_qualities(items: list[str], codecs: list[str]) -> dict[str, list[float]]:
    """``--qualities`` items, ``Q,Q,...`` for every codec run or ``CODEC=Q,Q,...`` for one; later ones win."""
    qualities: dict[str, list[float]] = {}
    for item in items:
        name, _, values = item.rpartition("=")
        try:
            numbers = [_number(value) for value in values.split(",")]
        except ValueError:
            raise UsageError(f"--qualities: {item!r} is not [CODEC=]Q,Q,...") from None
        if name and name not in codecs:
            raise UsageError(f"--qualities: {name} is not among the codecs run ({', '.join(codecs)})")
        qualities.update({target: numbers for target in ([name] if name else codecs)})
    return qualities


def _command_line(args: argparse.Namespace) -> str:
    """The command as typed, near enough to run again (options at their defaults left out)."""
    parts = ["vaecodec", "bench", *(["--dataset", args.dataset] if args.dataset else [args.folder]), "--out", args.out]
    for option in ("codecs", "limit", "repeats", "config", "weights"):
        if getattr(args, option) is not None:
            parts += [f"--{option}", str(getattr(args, option))]
    if args.qualities:
        parts += ["--qualities", *args.qualities]
    if args.threads != DEFAULT_THREADS:
        parts += ["--threads", str(args.threads)]
    if args.device != "cpu":
        parts += ["--device", args.device]
    return shlex.join(parts)


def cmd_bench(args: argparse.Namespace) -> int:
    if (args.folder is None) == (args.dataset is None):
        raise UsageError("give either a FOLDER of images or --dataset kodak")
    from vaecodec.threads import set_threads

    with needs_extra(BENCH):  # matplotlib, scikit-image and scipy are imported here, not at start-up
        from vaecodec.bench.codecs import BenchOptions, base_name, build_codecs
        from vaecodec.bench.dataset import kodak_folder, list_images
        from vaecodec.bench.run import BenchConfig, Plan, new_results, run
        from vaecodec.bench.summary import BD_METRICS

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise VaecodecError(f"{out} is not a directory")
    config = BenchConfig.load(Path(args.config) if args.config else _default_config())
    folder = kodak_folder(args.limit) if args.dataset else Path(args.folder)
    images = list_images(folder, args.limit)
    names = args.codecs.split(",") if args.codecs else list(config.qualities)
    set_threads(args.threads)
    codecs, skipped = build_codecs(names, BenchOptions(args.threads, args.weights, args.device))
    if "torch" in sys.modules:  # the torch engine's threads too, where a variant runs on it
        sys.modules["torch"].set_num_threads(args.threads)
    for name, reason in skipped.items():
        print(f"vaecodec: note: skipping {name}: {reason}", file=sys.stderr)
    if not codecs:
        raise VaecodecError("none of the codecs asked for is available")
    defaults = {name: config.qualities[base_name(name)] for name in names if base_name(name) in config.qualities}
    qualities = {**config.qualities, **defaults, **parse_qualities(args.qualities or [], names)}
    for codec in codecs:
        if codec.name not in qualities:
            raise UsageError(f"no qualities for {codec.name}: give --qualities {codec.name}=Q,Q,...")
        for quality in qualities[codec.name]:
            codec.check_quality(quality)

    plan = Plan(images, codecs, {codec.name: qualities[codec.name] for codec in codecs}, args.repeats or config.repeats)
    results = new_results(plan, skipped, config, folder, _command_line(args), args.threads)
    try:
        run(plan, results, out, config.visual, show_progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"vaecodec: note: stopped; the finished images are saved and reported in {out}", file=sys.stderr)
        raise
    print(f"{len(images)} images, {len(codecs)} codecs: {out / 'report.md'}")
    for codec, entry in results["bd_rate"].get("measured", {}).items():
        cells = [f"{name} {entry[m]['cubic']['percent']:+.1f} %" if "percent" in entry[m]["cubic"] else f"{name} n/a"
                 for m, name in BD_METRICS.items()]
        print(f"  BD-rate of {codec} against JPEG: {', '.join(cells)}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``bench`` to the ``vaecodec`` command line."""
    bench = commands.add_parser("bench", help="rate-distortion benchmark against JPEG, WebP, AVIF, JPEG XL, JPEG 2000",
                                description="Measure bpp, PSNR, SSIM, MS-SSIM and speed of vaecodec and other codecs "
                                            "on a folder of images; write results.json, results.csv, report.md and plots. "
                                            f"Needs the bench extra: {BENCH.install}.")
    bench.add_argument("folder", nargs="?", help="folder of images (png, jpg, ...), all of them or the first --limit")
    bench.add_argument("--dataset", choices=["kodak"], help="the Kodak set, downloaded once into ~/.cache/vaecodec")
    bench.add_argument("--out", required=True, help="folder for the results and the report")
    bench.add_argument("--codecs", help="comma-separated, from vaecodec,jpeg,webp,avif,jxl,jpeg2000 (default: all available)")
    bench.add_argument("--qualities", nargs="+", action="extend", metavar="[CODEC=]Q,Q",
                       help="qualities for every codec, or for one with CODEC=; default from the configuration")
    bench.add_argument("--limit", type=whole_number("limit"), help="only the first N images, by name")
    bench.add_argument("--repeats", type=whole_number("repeats"), help="timed runs of each encode and decode, the median kept (default 3)")
    bench.add_argument("--threads", type=whole_number("threads"), default=DEFAULT_THREADS,
                       help=f"threads for vaecodec's engine, AVIF and JPEG XL (default {DEFAULT_THREADS})")
    bench.add_argument("--config", help="configuration file (default: bench/config.json, shipped with the package)")
    bench.add_argument("--weights", help="vaecodec weights file (default: the shipped weights)")
    bench.add_argument("--device", default="cpu", help="device for vaecodec's networks (default: cpu; another, e.g. cuda, runs them on torch)")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.set_defaults(run=cmd_bench)
