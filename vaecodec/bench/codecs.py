"""The codecs under test, each behind the same two calls: pixels and a quality to bytes, and back.

Every adapter keeps its library's default settings apart from the quality knob (and the thread
count where the library has one), so a figure here is what a user of that library gets; the
knob's meaning is recorded with the results. A codec whose library is missing raises
``Unavailable`` when built, and the bench skips it with a note.

vaecodec also runs as variants, each a curve of its own: ``vaecodec@precision=fp32``,
``vaecodec@effort=9``, ``vaecodec@tune=ssim``, ``vaecodec@engine=torch`` (the settings joined by
``+``), named so in the results.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import PIL
from PIL import Image, features

from vaecodec.errors import VaecodecError


class Unavailable(Exception):
    """This codec's library is not installed or was built without it; the message says which."""


@dataclass(frozen=True)
class BenchOptions:
    """What adapters may need besides the quality: threads, and the vaecodec weights and device."""

    threads: int = 2
    weights: str | None = None
    device: str = "cpu"


@dataclass(frozen=True)
class BenchCodec:
    """One codec ready to run: ``encode(pixels HxWx3 uint8, quality) -> bytes``, ``decode -> pixels``."""

    name: str
    label: str
    knob: str  # what a quality value means for this codec
    version: str
    quality_range: tuple[float, float]
    whole_qualities: bool
    encode: Callable[[np.ndarray, float], bytes]
    decode: Callable[[bytes], np.ndarray]

    def check_quality(self, quality: float) -> None:
        low, high = self.quality_range
        if not low <= quality <= high or (self.whole_qualities and quality != int(quality)):
            kind = "whole numbers" if self.whole_qualities else "numbers"
            raise VaecodecError(f"{self.name} qualities are {kind} from {low:g} to {high:g} ({self.knob}), got {quality:g}")


def _decode_pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


_LIBRARIES = {"jpg": "libjpeg", "webp": "libwebp", "avif": "libavif", "jpg_2000": "OpenJPEG"}


def _library_version(feature: str) -> str:
    """The library behind a Pillow feature and its version (libjpeg-turbo reports its own)."""
    if feature == "jpg" and features.check("libjpeg_turbo"):
        return f"libjpeg-turbo {features.version('libjpeg_turbo')}"
    return f"{_LIBRARIES[feature]} {features.version(feature)}"


def _pillow(name: str, label: str, feature: str, image_format: str, knob: str,
            quality_range: tuple[float, float], whole: bool,
            save_options: Callable[[float, BenchOptions], dict[str, Any]]) -> Callable[[BenchOptions], BenchCodec]:
    """A factory for a format that Pillow writes when it was built with ``feature``."""

    def build(options: BenchOptions) -> BenchCodec:
        if not features.check(feature):
            raise Unavailable(f"Pillow {PIL.__version__} was built without {feature}")

        def encode(pixels: np.ndarray, quality: float) -> bytes:
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, image_format, **save_options(quality, options))
            return buffer.getvalue()

        version = f"Pillow {PIL.__version__}, {_library_version(feature)}"
        return BenchCodec(name, label, knob, version, quality_range, whole, encode, _decode_pillow)

    return build


def _jxl(options: BenchOptions) -> BenchCodec:
    try:
        import imagecodecs
    except ImportError:
        raise Unavailable("imagecodecs is not installed (pip install imagecodecs)") from None
    if not imagecodecs.JPEGXL.available:
        raise Unavailable(f"imagecodecs {imagecodecs.__version__} was built without JPEG XL")

    def encode(pixels: np.ndarray, quality: float) -> bytes:
        return bytes(imagecodecs.jpegxl_encode(pixels, level=quality, numthreads=options.threads))

    def decode(data: bytes) -> np.ndarray:
        return imagecodecs.jpegxl_decode(data, numthreads=options.threads)

    version = f"imagecodecs {imagecodecs.__version__}, {imagecodecs.jpegxl_version()}"
    return BenchCodec("jxl", "JPEG XL", "libjxl quality (90 = distance 1), effort 7", version, (0, 100), False,
                      encode, decode)


VARIANT = "@"  # vaecodec@precision=fp32: a variant of vaecodec


def _vaecodec(options: BenchOptions, settings: dict[str, str] | None = None) -> BenchCodec:
    import vaecodec
    from vaecodec.codec import get_codec

    from vaecodec.effort import DEFAULT_EFFORT, check_effort
    from vaecodec.tunes import DEFAULT_TUNE

    settings = settings or {}
    known = ("precision", "effort", "tune", "engine")
    unknown = set(settings) - set(known)
    if unknown:
        raise VaecodecError(f"unknown vaecodec setting {sorted(unknown)[0]!r} (choose from {', '.join(known)})")
    codec = get_codec(options.weights, options.device, settings.get("precision", "auto"),
                      tune=settings.get("tune", DEFAULT_TUNE), engine=settings.get("engine", "auto"))
    text = settings.get("effort", str(DEFAULT_EFFORT))
    effort = check_effort(int(text) if text.isdigit() else text)
    name = VARIANT.join(["vaecodec", "+".join(f"{k}={v}" for k, v in settings.items())]) if settings else "vaecodec"
    label = f"vaecodec ({', '.join(f'{k} {v}' for k, v in settings.items())})" if settings else "vaecodec"
    version = f"vaecodec {vaecodec.__version__}, weights {codec.weights_id.hex()} ({codec.tune}), {codec.engine} {codec.precision}"
    return BenchCodec(name, label, "quality 0-100", version, (0, 100), False,
                      lambda pixels, quality: codec.compress(pixels, quality, effort=effort),
                      lambda data: np.asarray(codec.decompress(data).convert("RGB")))


def base_name(name: str) -> str:
    """The codec a name runs (``vaecodec`` for ``vaecodec@precision=fp32``)."""
    return name.partition(VARIANT)[0]


def _variant_settings(name: str) -> dict[str, str]:
    text = name.partition(VARIANT)[2]
    pairs = [item.partition("=") for item in text.split("+")] if text else []
    if any(not key or not sep or not value for key, sep, value in pairs):
        raise VaecodecError(f"codec {name!r}: write settings as {base_name(name)}@KEY=VALUE+KEY=VALUE")
    return {key: value for key, _, value in pairs}


# name -> factory, in the order codecs are listed and drawn.
CODECS: dict[str, Callable[[BenchOptions], BenchCodec]] = {
    "vaecodec": _vaecodec,
    "jpeg": _pillow("jpeg", "JPEG", "jpg", "JPEG", "libjpeg quality, 4:2:0, baseline", (0, 100), True,
                    lambda q, o: {"quality": int(q)}),
    "webp": _pillow("webp", "WebP", "webp", "WEBP", "libwebp quality, method 4", (0, 100), True,
                    lambda q, o: {"quality": int(q)}),
    "avif": _pillow("avif", "AVIF", "avif", "AVIF", "libavif quality, 4:2:0, speed 6", (0, 100), True,
                    lambda q, o: {"quality": int(q), "max_threads": o.threads}),
    "jxl": _jxl,
    "jpeg2000": _pillow("jpeg2000", "JPEG 2000", "jpg_2000", "JPEG2000",
                        "OpenJPEG compression ratio (lower is better), 9/7 wavelet, colour transform",
                        (1, 10_000), False,
                        lambda q, o: {"quality_mode": "rates", "quality_layers": [q], "irreversible": True, "mct": 1}),
}


def build_codecs(names: list[str], options: BenchOptions) -> tuple[list[BenchCodec], dict[str, str]]:
    """The available codecs among ``names``, and for each unavailable one the reason it is skipped."""
    unknown = [name for name in names if base_name(name) not in CODECS]
    if unknown:
        raise VaecodecError(f"unknown codec {unknown[0]!r} (choose from {', '.join(CODECS)})")
    codecs, skipped = [], {}
    for name in names:
        if VARIANT in name and base_name(name) != "vaecodec":
            raise VaecodecError(f"codec {name!r}: only vaecodec has variants")
        try:
            codecs.append(_vaecodec(options, _variant_settings(name)) if VARIANT in name else CODECS[name](options))
        except Unavailable as reason:
            skipped[name] = str(reason)
    return codecs, skipped
