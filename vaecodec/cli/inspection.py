"""``vaecodec inspect``, ``sample`` and ``interpolate``: looking inside files and the model.

- ``inspect FILE.vae``: where the file's bits go (per 16x16 block, per latent channel, the
  hyper-latent's share), as figures and summary.json in a folder, and a few lines on stdout.
- ``sample``: an image drawn from the model's prior at a quality, the same for the same seed.
- ``interpolate A B``: the decoded blends of two images' latents, as a film strip.

The work is done by the library (``vaecodec.inspection``, ``vaecodec.inspect_plots``,
``vaecodec.generative``), imported when a command runs so the rest of the command line starts
quickly. Outputs are computed in full before the first is written, each whole or not at all
(``vaecodec.files``), and an existing one is kept unless -f is given.
"""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

from vaecodec.extras import PLOTS, needs_extra
from vaecodec.errors import VaecodecError
from vaecodec.files import replacing
from vaecodec.format.container import DEFAULT_QUALITY

if TYPE_CHECKING:
    from PIL import Image

    from vaecodec.codec import Codec

# The files ``inspect`` writes into its folder.
BIT_MAP, CHANNELS, CHANNEL_BITS, SUMMARY = "bitmap.png", "channels.png", "channel_bits.png", "summary.json"
MAX_CHANNELS = 64  # rows of the channel mosaic: more would not be readable


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``inspect``, ``sample`` and ``interpolate`` to the ``vaecodec`` command line."""
    inspect = commands.add_parser(
        "inspect", help="show where a .vae file's bits go: bit map, latent channels, summary",
        description=f"Decode a .vae file and write, into a folder, {BIT_MAP} (bits per 16x16 block over the "
                    f"decoded image), {CHANNELS} (the costliest latent channels: symbols, predicted mean and "
                    f"scale), {CHANNEL_BITS} (each channel's share of the bits) and {SUMMARY}; print a summary. "
                    f"The figures need matplotlib: {PLOTS.install}.")
    inspect.add_argument("input", help=".vae file")
    inspect.add_argument("--out", help="folder for the figures and the summary (default: INPUT-inspect beside it)")
    inspect.add_argument("--original", help="the image the file was made from: adds a PSNR map beside the bit map")
    inspect.add_argument("--channels", type=int, default=8, metavar="K",
                         help=f"show the K costliest latent channels (default 8, at most {MAX_CHANNELS})")
    inspect.add_argument("--json", action="store_true", help=f"print the summary as JSON (as in {SUMMARY})")
    _add_common_options(inspect)
    inspect.set_defaults(run=cmd_inspect)

    sample = commands.add_parser("sample", help="draw an image from the model's prior",
                                 description="Draw a hyper-latent from its learned prior, then a latent from the "
                                             "Gaussians the hyper-synthesis predicts, and decode it: the generative "
                                             "side of the VAE. The same seed gives the same image.")
    sample.add_argument("-o", "--output", required=True, help="output image; its extension picks the format")
    sample.add_argument("--size", type=_dimensions, default=(512, 512), metavar="WxH", help="default 512x512")
    sample.add_argument("-q", "--quality", type=float, default=DEFAULT_QUALITY,
                        help=f"0-100: the rate level, how finely the latent is drawn (default {DEFAULT_QUALITY})")
    sample.add_argument("--seed", type=int, default=0, help="of the random draw (default 0)")
    _add_common_options(sample)
    sample.set_defaults(run=cmd_sample)

    interpolate = commands.add_parser(
        "interpolate", help="decode blends of two images' latents, as a film strip",
        description="Code both images at one quality and decode linear blends of their decoded latents; the end "
                    "frames are the two decoded images. The images must have one size (or give --fit).")
    interpolate.add_argument("inputs", nargs=2, metavar="IMAGE", help="the first and the last frame's image")
    interpolate.add_argument("-o", "--output", required=True, help="output image; its extension picks the format")
    interpolate.add_argument("--steps", type=int, default=8, help="frames, both ends included (default 8)")
    interpolate.add_argument("-q", "--quality", type=float, default=DEFAULT_QUALITY,
                             help=f"0-100 (default {DEFAULT_QUALITY})")
    interpolate.add_argument("--fit", action="store_true",
                             help="scale and centre-crop the second image to the first's size")
    _add_common_options(interpolate)
    interpolate.set_defaults(run=cmd_interpolate)


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
    parser.add_argument("--weights", help="weights file (default: the shipped weights)")
    parser.add_argument("--device", default="cpu", help="cpu (default), or a torch device such as cuda (the torch engine)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="of the networks (default auto: bf16 where the device runs it natively)")


def _dimensions(text: str) -> tuple[int, int]:
    """``--size WxH``: two whole numbers (their range is the library's to check)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT in pixels, e.g. 512x512, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def cmd_inspect(args: argparse.Namespace) -> int:
    with needs_extra(PLOTS):  # before any work: without matplotlib there would be no figures
        from vaecodec import inspect_plots

    from vaecodec.inspection import inspect

    source = Path(args.input)
    out = Path(args.out) if args.out else source.with_name(f"{source.stem}-inspect")
    if out.exists() and not out.is_dir():
        raise VaecodecError(f"{out} is not a directory")
    targets = [out / name for name in (BIT_MAP, CHANNELS, CHANNEL_BITS, SUMMARY)]
    _refuse_existing(targets, args.force)
    if not 1 <= args.channels <= MAX_CHANNELS:
        raise VaecodecError(f"--channels must be a whole number from 1 to {MAX_CHANNELS}, got {args.channels}")
    data = _read_bytes(source)
    original = _read_image(args.original) if args.original else None
    found = inspect(data, original, codec=_codec(args))
    title = f"{source.name}, quality {found.quality:g}"
    summary = {"file": str(source), **found.summary(args.channels)}
    outputs = [inspect_plots.bit_map(found, title, Path(args.original).name if args.original else ""),
               inspect_plots.channels(found, title, args.channels),
               inspect_plots.channel_shares(found, title, args.channels),
               (json.dumps(summary, indent=2) + "\n").encode()]
    out.mkdir(parents=True, exist_ok=True)
    for target, content in zip(targets, outputs):
        _write(target, content)
    print(json.dumps(summary, indent=2) if args.json else _describe(summary, args.original))
    return 0


def _describe(summary: dict, original: str | None) -> str:
    """The summary as a few lines of text."""
    sizes = summary["bytes"]
    block = summary["costliest_block"]
    lines = [
        f"{summary['file']}: {summary['width']}x{summary['height']} {summary['mode']}, quality {summary['quality']:g}, "
        f"{sizes['file']:,} bytes, {summary['bits_per_pixel']:.4f} bpp",
        f"  hyper-latent stream  {sizes['hyper_stream']:,} bytes ({100 * summary['hyper_share']:.1f} % of the file)",
        f"  latent stream        {sizes['latent_stream']:,} bytes ({100 * sizes['latent_stream'] / sizes['file']:.1f} %)",
        f"  header and the rest  {sizes['other']:,} bytes",
        f"  costliest block      {block['bits_per_pixel']:.3f} bpp, the 16x16 at x={block['x']}, y={block['y']}",
        "  costliest channels   " + ", ".join(f"{c['channel']} ({100 * c['share']:.1f} %)" for c in summary["channels"]),
    ]
    if original:
        psnr = summary["psnr"]
        lines.append(f"  PSNR                 {'exact' if psnr is None else f'{psnr:.2f} dB'} against {original}")
    return "\n".join(lines)


def cmd_sample(args: argparse.Namespace) -> int:
    from vaecodec.generative import sample

    output = Path(args.output)
    image_format = _image_format(output)
    _refuse_existing([output], args.force)
    _check_folder(output.parent)
    width, height = args.size
    image = sample(width, height, args.quality, args.seed, codec=_codec(args))
    _write(output, _encoded(image, image_format))
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from PIL import Image, ImageOps

    from vaecodec.generative import film_strip, interpolate

    output = Path(args.output)
    image_format = _image_format(output)
    _refuse_existing([output], args.force)
    _check_folder(output.parent)
    (first_name, last_name), (first, last) = args.inputs, [_read_image(name) for name in args.inputs]
    if first.size != last.size:
        if not args.fit:
            raise VaecodecError(f"{first_name} is {first.width}x{first.height} but {last_name} is "
                                f"{last.width}x{last.height}: interpolate needs images of one size "
                                f"(--fit scales and crops the second to the first's)")
        last = ImageOps.fit(last, first.size, Image.Resampling.LANCZOS)
    frames = interpolate(first, last, args.quality, args.steps, codec=_codec(args))
    _write(output, _encoded(film_strip(frames), image_format))
    return 0


# -- inputs and outputs ------------------------------------------------------------------------


def _codec(args: argparse.Namespace) -> Codec:
    from vaecodec.codec import get_codec

    return get_codec(args.weights, args.device, args.precision)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise VaecodecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise VaecodecError(f"{path}: is a directory") from None


def _read_image(name: str) -> Image.Image:
    from vaecodec.imageio import read_image

    return read_image(Path(name))


def _image_format(output: Path) -> str:
    """The Pillow format that writes ``output``'s extension."""
    from PIL import Image

    image_format = Image.registered_extensions().get(output.suffix.lower())
    if image_format is None or image_format not in Image.SAVE:
        raise VaecodecError(f"{output}: not an image extension Pillow can write (use .png, say)")
    return image_format


def _encoded(image: Image.Image, image_format: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def _refuse_existing(targets: list[Path], force: bool) -> None:
    """Fail before any work if an output exists and may not be overwritten."""
    for target in targets:
        if target.is_dir():
            raise VaecodecError(f"{target} is a directory")
        if target.exists() and not force:
            raise VaecodecError(f"{target} exists (use -f to overwrite)")


def _check_folder(folder: Path) -> None:
    """Fail before any work if an output's folder is missing."""
    if not folder.is_dir():
        raise VaecodecError(f"{folder}: no such directory")


def _write(target: Path, content: bytes) -> None:
    """``content`` to ``target``, whole or not at all."""
    with replacing(target) as out:
        out.write(content)
