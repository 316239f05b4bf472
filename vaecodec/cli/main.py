"""The ``vaecodec`` command: encode, decode, info, train and bench, with cjpeg-like habits.

Errors are one line on stderr (``vaecodec: error: ...``) and a non-zero exit; outputs are written
to a temporary file and renamed, so a failure never leaves a half-written file behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import io
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from vaecodec.cli import PROG
from vaecodec.cli.options import number_list, whole_number
from vaecodec.errors import UsageError, VaecodecError
from vaecodec.files import refuse_existing, write_output
from vaecodec.tunes import DEFAULT_TUNE, DISTORTIONS, TUNES

if TYPE_CHECKING:
    from vaecodec.cli.batch import Job, Outcome

_EXAMPLE = f"example: {PROG} encode photo.png -q 60 (writes photo.vae)"  # in --help and the bare command's usage


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are a single line, like every other error of the tool."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _quality(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"quality must be a number from 0 to 100, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"quality must be from 0 to 100, got {text}")
    return value


_SIZE_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "KIB": 1024, "MIB": 1024**2, "K": 1000, "M": 1000**2}


def _size(text: str) -> int:
    """A file size with an optional unit: 20KB = 20000 bytes, 20KiB = 20480."""
    number = text.rstrip("kKmMgGiIbB")
    unit = text[len(number):].upper()
    try:
        size = int(float(number) * _SIZE_UNITS[unit])
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"size must be a number of bytes with an optional unit (B, KB, MB, KiB, MiB), got {text!r}") from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return size


def _positive(name: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {text!r}")
        return value

    return parse


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise VaecodecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise VaecodecError(f"{path}: is a directory") from None


def _codec(args: argparse.Namespace):
    from vaecodec.codec import get_codec

    return get_codec(args.weights, args.device, args.precision, tune=getattr(args, "tune", DEFAULT_TUNE),
                     engine=args.engine)


def _write_job_output(path: str, data: bytes, args: argparse.Namespace) -> None:
    """``write_output``, first making the folders that --out-dir mirrors."""
    if args.out_dir is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_output(path, data, args.force)


def cmd_encode(args: argparse.Namespace) -> int:
    from vaecodec.cli.batch import image_suffixes, plan, run

    if args.shards is not None:  # WebDataset shards instead of files
        from vaecodec.cli.shards import encode_shards

        return encode_shards(args, functools.partial(compress_job, args), processes=_processes(args),
                             setup=functools.partial(_codec, args))
    jobs = plan(args.inputs, suffixes=image_suffixes(), kind="image", recursive=args.recursive,
                output_suffix=".vae", output=args.output, out_dir=args.out_dir)
    _codec(args)  # a bad --weights or --device is one error before any file
    return run(jobs, functools.partial(_encode, args), processes=_processes(args),
               setup=functools.partial(_codec, args))


def _encode(args: argparse.Namespace, job: Job) -> Outcome:
    """One file of ``vaecodec encode`` (in a worker process with -j)."""
    refuse_existing(job.output, args.force)
    outcome = compress_job(args, job)
    _write_job_output(job.output, outcome.data, args)
    return dataclasses.replace(outcome, data=b"")  # written: the batch's summary needs only the sizes


def compress_job(args: argparse.Namespace, job: Job) -> Outcome:
    """Read and compress the input of one job of ``vaecodec encode``; the outcome holds the .vae
    bytes (written to a file, or to a shard by ``vaecodec.cli.shards``)."""
    from vaecodec.cli.batch import Outcome
    from vaecodec.imageio import read_first_frame

    if job.source == "-":
        data = _read_input("-")
        (image, frames), read = read_first_frame(io.BytesIO(data)), len(data)
    else:
        (image, frames), read = read_first_frame(Path(job.source)), os.path.getsize(job.source)
    from vaecodec.cli.effort import terminal_progress

    with terminal_progress(job.source, args.effort) as progress:
        coded = _codec(args).compress(image, args.quality, size=args.size, bpp=args.bpp, psnr=args.psnr,
                                      effort=args.effort, progress=progress)
    dropped = (f"{job.source} has {frames} frames; coding the first",) if frames > 1 else ()
    return Outcome(read, len(coded), image.width * image.height, len(coded), warnings=dropped, data=coded)


def _processes(args: argparse.Namespace) -> int:
    """The processes -j asks for; just this one when the networks run on another device."""
    return args.jobs if args.device == "cpu" else 1


_EXTENSION_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP",
                      ".tif": "TIFF", ".tiff": "TIFF", ".ppm": "PPM", ".pgm": "PPM", ".gif": "GIF"}


def _image_format(output: str) -> str:
    """The Pillow format an output's extension asks for (PNG for stdout)."""
    from PIL import Image

    image_format = "PNG" if output == "-" else _EXTENSION_FORMATS.get(Path(output).suffix.lower())
    if image_format is None:
        known = ", ".join(sorted(_EXTENSION_FORMATS))
        raise VaecodecError(f"{output}: unknown image extension (use one of {known})")
    Image.init()  # Pillow built without a format's library (WebP's, say) has no writer for it
    if image_format not in Image.SAVE:
        raise VaecodecError(f"{output}: this Pillow cannot write {image_format} (it was built without it)")
    return image_format


def cmd_decode(args: argparse.Namespace) -> int:
    from vaecodec.cli.batch import plan, run

    jobs = plan(args.inputs, suffixes=frozenset({".vae"}), kind=".vae", recursive=args.recursive,
                output_suffix=f".{args.format}", output=args.output, out_dir=args.out_dir)
    _codec(args)
    return run(jobs, functools.partial(_decode, args), processes=_processes(args),
               setup=functools.partial(_codec, args))


def _decode(args: argparse.Namespace, job: Job) -> Outcome:
    """One file of ``vaecodec decode`` (in a worker process with -j)."""
    from vaecodec.cli.batch import Outcome

    image_format = _image_format(job.output)
    refuse_existing(job.output, args.force)
    data = _read_input(job.source)
    image = _codec(args).decompress(data)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    _write_job_output(job.output, buffer.getvalue(), args)
    return Outcome(len(data), buffer.tell(), image.width * image.height, len(data))


def cmd_info(args: argparse.Namespace) -> int:
    from vaecodec.format.container import parse
    from vaecodec.model.bundle import packaged_tune

    for name in args.inputs:
        file = parse(_read_input(name))
        print(f"{name}:")
        print(f"  format version  {file.version}")
        print(f"  dimensions      {file.width}x{file.height} {file.mode}")
        print(f"  quality         {file.quality:g}")
        print(f"  weights id      {file.weights_id.hex()}")
        print(f"  tune            {packaged_tune(file.weights_id) or 'unknown (weights not installed)'}")
        print(f"  size            {file.size} bytes (hyper-latent {len(file.hyper_stream)}, latent {len(file.latent_stream)})")
        print(f"  bits per pixel  {file.bits_per_pixel:.4f}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if not Path(args.data).is_dir():
        raise VaecodecError(f"{args.data}: no such directory")
    from vaecodec.extras import TORCH, needs_extra

    with needs_extra(TORCH.needed_by("vaecodec train")):
        from vaecodec.train.loop import TrainSettings, train

    settings = TrainSettings(
        data=Path(args.data), out=Path(args.out), steps=args.steps, batch=args.batch, crop=args.crop,
        lr=args.lr, lr_final=args.lr_final, decay_start=args.decay_start, minutes=args.minutes, channels=args.channels,
        latent_channels=args.latent_channels, lambdas=number_list("--lambdas", float, args.lambdas), lowest_level=args.lowest_level,
        distortion=args.distortion, level_tilt=args.level_tilt, clean_weight=args.clean_weight,
        crops_on_device=args.crops_on_device,
        context_groups=number_list("--context-groups", int, args.context_groups), context_channels=args.context_channels,
        context_lr_factor=args.context_lr_factor,
        device=args.device, precision=args.precision, resume=args.resume,
        init_weights=Path(args.init_weights) if args.init_weights else None,
        checkpoint_minutes=args.checkpoint_minutes, eval_every=args.eval_every, eval_images=args.eval_images,
        threads=args.threads, seed=args.seed, export=Path(args.export) if args.export else None,
    )
    if not settings.data.is_dir():
        raise VaecodecError(f"{settings.data}: no such directory")
    if args.evaluate:
        from vaecodec.train.evaluate import validate

        print(validate(settings.data, settings.init_weights))
        return 0
    train(settings, log=lambda message: print(message, flush=True))
    return 0


class _Version(argparse.Action):
    """``--version``: vaecodec's, then the engines installed and the one "auto" runs on the CPU
    (as ``avifenc --version`` names its codecs), found only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from vaecodec import __version__
        from vaecodec.engine import versions

        print(f"{PROG} {__version__}\nengines: {versions()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    from vaecodec.format.container import DEFAULT_QUALITY

    parser = _Parser(prog=PROG, description="A learned image codec.", epilog=_EXAMPLE)
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and the engines, and exit")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add_model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--weights", help="weights file: a bundle (.npz) or torch weights (.pt, the torch extra) "
                       "(default: the shipped weights of the tune)")
        p.add_argument("--engine", choices=("auto", "onnxruntime", "openvino", "torch"), default="auto",
                       help="what runs the networks: auto (default) is OpenVINO on the CPU where it is installed, "
                       "else ONNX Runtime (torch for bf16), and torch for another --device; openvino and torch "
                       "need their extras; files decode with any")
        p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                       help="of the networks: auto is bf16 where the CPU or GPU has native bf16 (OpenVINO, torch), "
                       "else fp32; ONNX Runtime runs fp32; files decode at either precision")
        p.add_argument("--device", default="cpu", help="cpu (default), or a torch device such as cuda (the torch engine)")

    def add_batch_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
        p.add_argument("--out-dir", help="write outputs here, mirroring the input folders (default: beside the inputs)")
        p.add_argument("-r", "--recursive", action="store_true", help="take the files of folders' subfolders too")
        p.add_argument("-j", "--jobs", type=whole_number("jobs"), default=1, metavar="N",
                       help="code N files at once in worker processes (default: 1, which was fastest on two "
                            "busy cores; always 1 with a --device other than cpu)")
        add_model_options(p)

    encode = commands.add_parser("encode", help="compress images to .vae files")
    encode.add_argument("inputs", nargs="+", help="image files, folders or globs; - reads stdin")
    encode.add_argument("-o", "--output", help="output file (one input only); - writes to stdout")
    target = encode.add_mutually_exclusive_group()
    target.add_argument("-q", "--quality", type=_quality,
                        help=f"0-100, higher is better and larger (default {DEFAULT_QUALITY})")
    target.add_argument("--size", type=_size, help="largest file size, e.g. 20KB, 1.5MB, 30000 (bytes); KiB/MiB too")
    target.add_argument("--bpp", type=_positive("bpp"), help="largest size in bits per pixel, e.g. 0.25")
    target.add_argument("--psnr", type=_positive("psnr"), help="smallest quality whose PSNR reaches this many dB")
    from vaecodec.cli.effort import HELP as EFFORT_HELP, parse_effort
    from vaecodec.effort import DEFAULT_EFFORT

    encode.add_argument("--effort", type=parse_effort, default=DEFAULT_EFFORT, metavar="N", help=EFFORT_HELP)
    encode.add_argument("--tune", choices=tuple(TUNES), default=DEFAULT_TUNE,
                        help="the weights: psnr (default: for squared error, PSNR) or ssim (trained for MS-SSIM, "
                        "what people see); any vaecodec with both decodes both")
    add_batch_options(encode)
    from vaecodec.cli.shards import add_options as add_shard_options

    add_shard_options(encode, size=_size)
    encode.set_defaults(run=cmd_encode)

    decode = commands.add_parser("decode", help="decompress .vae files to images")
    decode.add_argument("inputs", nargs="+", help=".vae files, folders or globs; - reads stdin")
    decode.add_argument("-o", "--output", help="output image (one input only); its extension picks the format; - writes PNG to stdout")
    decode.add_argument("--format", default="png", choices=sorted(ext[1:] for ext in _EXTENSION_FORMATS),
                        help="format of the outputs without -o (default: png, as IN.png)")
    add_batch_options(decode)
    decode.set_defaults(run=cmd_decode)

    info = commands.add_parser("info", help="show the header of .vae files")
    info.add_argument("inputs", nargs="+", help=".vae files")
    info.set_defaults(run=cmd_info)

    train = commands.add_parser("train", help="train the model (see TRAINING.md)")
    train.add_argument("data", help="folder of training photos (a name-hashed 1/16 is held out for validation)")
    train.add_argument("--out", default="runs/train", help="folder for the checkpoint and log.csv")
    train.add_argument("--steps", type=int, default=100_000)
    train.add_argument("--batch", type=int, default=8)
    train.add_argument("--crop", type=int, default=128)
    train.add_argument("--lr", type=float, default=5e-4)
    train.add_argument("--lr-final", type=float, default=5e-5)
    train.add_argument("--decay-start", type=float, default=0.8, help="fraction of the run before the cosine decay")
    train.add_argument("--minutes", type=float, default=0.0,
                       help="train for this many minutes instead of up to --steps (e.g. a GPU lease)")
    train.add_argument("--channels", type=int, help="N: channels of the transforms (default 96, or those of "
                       "--init-weights; more than theirs widens them, keeping what they compute)")
    train.add_argument("--latent-channels", type=int, help="M: channels of the latent (default 144, or those of "
                       "--init-weights; more than theirs adds latent channels)")
    train.add_argument("--context-groups", metavar="G,G,...",
                       help="a channel-conditional context: the latent channels of each group, in coding order, "
                       "adding up to M, e.g. 16,16,32,80 (added to --init-weights with zero corrections)")
    train.add_argument("--context-channels", type=int, default=64, help="width of the context groups' networks")
    train.add_argument("--context-lr-factor", type=float, default=1.0, metavar="F",
                       help="the context networks learn at F times --lr (and --lr-final): a context added to "
                       "annealed weights can learn fast while the transforms move slowly")
    train.add_argument("--lambdas", help="the rate levels' trade-offs, comma-separated and ascending (default: "
                       "those of --init-weights, else CompressAI's eight); gains start where the old curve had them")
    train.add_argument("--lowest-level", type=float,
                       help="the rate level quality 0 codes at, in level steps; below 0 extrapolates the two lowest "
                       "(default: that of --init-weights, else -1.5)")
    train.add_argument("--distortion", choices=DISTORTIONS,
                       help="what the rate levels trade bits against: mse (the default weights) or ms-ssim (the "
                       "ssim tune); a change from --init-weights' keeps their gains and sets the new lambdas (--lambdas, "
                       "or the MS-SSIM lambdas matching the shipped levels)")
    train.add_argument("--level-tilt", type=float, default=0.0,
                       help="0 trains every rate level equally often; up to 1 tilts the steps toward the high rates "
                       "(the density runs from 1-TILT at quality 0 to 1+TILT at quality 100)")
    train.add_argument("--clean-weight", type=float, default=1.0,
                       help="how much more often, per pixel, crops come from lossless (PNG) photos than from JPEGs")
    train.add_argument("--crops-on-device", action="store_true",
                       help="hold the training photos on the device and cut each batch's crops there (the same crops "
                       "as without it, for the same seed), instead of on the CPU with a copy per batch")
    train.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    train.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                       help="bf16: autocast with channels-last (weights, optimizer and loss stay fp32); auto: bf16 "
                       "where the device runs it natively, else fp32")
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    train.add_argument("--init-weights", help="start from a weights file (e.g. the shipped one)")
    train.add_argument("--checkpoint-minutes", type=float, default=5.0)
    train.add_argument("--eval-every", type=int, default=2000, help="steps between validation runs (0: never)")
    train.add_argument("--eval-images", type=int, default=8)
    train.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--export", help="write a weights file here when training ends")
    train.add_argument("--evaluate", action="store_true",
                       help="only evaluate weights (--init-weights, default the shipped ones) on the whole validation split")
    train.set_defaults(run=cmd_train)

    from vaecodec.cli.bench import register as register_bench

    register_bench(commands)
    from vaecodec.cli.inspection import register as register_inspection

    register_inspection(commands)
    return parser


def short_usage(parser: argparse.ArgumentParser) -> str:
    """What ``vaecodec`` alone prints, as git and cwebp do: the usage, the commands and an example."""
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    width = max(len(command.dest) for command in commands._choices_actions)
    return "\n".join([
        f"usage: {PROG} COMMAND [options] ...", "", "commands:",
        *(f"  {command.dest:<{width}}  {command.help}" for command in commands._choices_actions),
        "", _EXAMPLE, f"'{PROG} COMMAND --help' shows a command's options.",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser()
        if not argv:
            print(short_usage(parser), file=sys.stderr)
            return 2
        args = parser.parse_args(argv)
        return args.run(args)
    except VaecodecError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
    except (OSError, MemoryError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
