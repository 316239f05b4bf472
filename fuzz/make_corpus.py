"""Write the fuzz targets' seed corpora, fuzz/corpus/<target>/, from scikit-image's bundled photos.

    python fuzz/make_corpus.py          # rewrites fuzz/corpus/ (the same bytes on the same machine)

Small valid inputs of every kind the targets take, so that the fuzzer starts from files that
reach deep into the code rather than having to discover the format:

- ``decompress``, ``pillow_open``, ``info``: .vae files of every colour mode (RGB, L, RGBA, LA),
  of a 16-bit PNG source, with ICC profiles, at qualities 0 to 100, of sizes that do and do not
  fill the 64-pixel stride (1x1 to 130x40), format version 1 (the shipped weights) and version 2
  (the small "channel-context" weights of ``common.context_bundle``, made with torch), and the
  committed files of tests/compat (coded by shipped weights, kept decoding by tests/test_compat.py);
- ``compress``: image files of the formats and modes ``vaecodec encode`` reads: PNG (RGB, L, RGBA,
  LA, palette with transparency, 1-bit, 16-bit grey and colour, ICC, an animation), JPEG (EXIF
  orientation, ICC, CMYK, grey, progressive), TIFF (16-bit, float, CMYK, LAB, two pages), BMP,
  GIF, PPM/PGM/PBM (16-bit too), WebP, TGA, and a .vae file (read through the Pillow plugin).

The files are coded on ONNX Runtime in fp32 (the core install's engine), so another machine's
run differs at most by the float transforms' rounding. Each file is under 20 KB, all under 1 MB.
The version 2 files name the context weights by their id, which depends on torch's random
initialisation: after a torch upgrade, run this again (fuzz/out/context-weights is remade too).
"""

from __future__ import annotations

import io
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms
from skimage import data

import common  # noqa: E402  (puts the checkout first on sys.path)

import vaecodec  # noqa: E402
from vaecodec.imageio import read_image  # noqa: E402

CORPUS = common.FUZZ / "corpus"
COMPAT = common.ROOT / "tests" / "compat"
VAE_TARGETS = ("decompress", "pillow_open", "info")
LIMIT = 20_000  # bytes per file


def crop(photo: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    return np.ascontiguousarray(photo[top : top + height, left : left + width])


def gradient(height: int, width: int) -> np.ndarray:
    """An alpha plane with every kind of value: opaque, transparent, and a ramp between."""
    ramp = np.linspace(0, 255, width).round().astype(np.uint8)
    alpha = np.tile(ramp, (height, 1))
    alpha[: height // 4] = 255
    alpha[-(height // 4) :] = 0
    return alpha


def with_alpha(rgb_or_gray: np.ndarray, mode: str) -> Image.Image:
    image = Image.fromarray(rgb_or_gray)
    image.putalpha(Image.fromarray(gradient(*rgb_or_gray.shape[:2])))
    assert image.mode == mode
    return image


def png_16_bit_rgb(pixels: np.ndarray) -> bytes:
    """A 16-bit RGB PNG (Pillow writes none), chunk by chunk."""
    height, width, _ = pixels.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\0" + pixels[row].astype(">u2").tobytes() for row in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def sixteen_bit(gray: np.ndarray) -> np.ndarray:
    """8-bit grey widened to 16 bits, with low bits that rounding to 8 bits must handle."""
    noise = (np.arange(gray.size, dtype=np.uint32).reshape(gray.shape) * 2654435761 >> 24).astype(np.uint16)
    return gray.astype(np.uint16) * 257 + noise % 200


def icc_profile(colour_space: str) -> bytes:
    """A LittleCMS profile with its creation time (header bytes 24-35) fixed, so the bytes repeat."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile(colour_space)).tobytes())
    profile[24:36] = struct.pack(">6H", 2024, 1, 1, 0, 0, 0)
    return bytes(profile)


def saved(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def vae_seeds() -> dict[str, bytes]:
    """.vae files: every mode, 16-bit source, ICC, qualities, sizes, both versions, tests/compat."""
    astronaut, camera, coffee, chelsea, rocket = (data.astronaut(), data.camera(), data.coffee(), data.chelsea(),
                                                  data.rocket())
    srgb = icc_profile("sRGB")
    lab = icc_profile("LAB")
    shipped = vaecodec.Codec(engine="onnxruntime", precision="fp32")
    face = Image.fromarray(crop(astronaut, 60, 180, 32, 48))
    with_icc = Image.fromarray(crop(astronaut, 100, 200, 32, 32))
    with_icc.info["icc_profile"] = srgb
    la_icc = with_alpha(crop(camera, 200, 200, 24, 40), "LA")
    la_icc.info["icc_profile"] = lab
    wide = sixteen_bit(crop(camera, 100, 220, 32, 32))
    sixteen_png = saved(Image.fromarray(wide), "PNG")
    assert Image.open(io.BytesIO(sixteen_png)).mode.startswith("I")
    seeds = {
        "v1-rgb-48x32-q0.vae": shipped.compress(face, 0),
        "v1-rgb-48x32-q50.vae": shipped.compress(face, 50),
        "v1-rgb-48x32-q100.vae": shipped.compress(face, 100),
        "v1-rgb-1x1-q75.vae": shipped.compress(crop(coffee, 200, 300, 1, 1), 75),
        "v1-rgb-65x17-q30.vae": shipped.compress(crop(coffee, 150, 250, 17, 65), 30),
        "v1-rgb-130x40-q90.vae": shipped.compress(crop(rocket, 200, 300, 40, 130), 90),
        "v1-l-40x56-q60.vae": shipped.compress(crop(camera, 60, 220, 56, 40), 60),
        "v1-rgba-40x32-q50.vae": shipped.compress(with_alpha(crop(coffee, 100, 300, 32, 40), "RGBA"), 50),
        "v1-la-32x24-q40.vae": shipped.compress(with_alpha(crop(chelsea, 100, 200, 24, 32)[..., 0], "LA"), 40),
        "v1-l-from-16-bit-png-32x32-q70.vae": shipped.compress(read_image(io.BytesIO(sixteen_png)), 70),
        "v1-rgb-icc-32x32-q55.5.vae": shipped.compress(with_icc, 55.5),
        "v1-la-icc-40x24-q20.vae": shipped.compress(la_icc, 20),
    }
    context = common.context_bundle()
    if context is None:
        sys.exit("the version 2 seeds need torch (pip install -e '.[dev]')")
    version_2 = vaecodec.Codec(context, engine="onnxruntime", precision="fp32")
    rgba_icc = with_alpha(crop(chelsea, 60, 150, 24, 40), "RGBA")
    rgba_icc.info["icc_profile"] = srgb
    seeds |= {
        "v2-rgb-48x32-q50.vae": version_2.compress(face, 50),
        "v2-rgba-icc-40x24-q80.vae": version_2.compress(rgba_icc, 80),
        "v2-l-70x20-q0.vae": version_2.compress(crop(camera, 300, 100, 20, 70), 0),
    }
    seeds |= {f"compat-{path.name}": path.read_bytes() for path in sorted(COMPAT.glob("*.vae"))}
    return seeds


def image_seeds() -> dict[str, bytes]:
    """Image files for the compress target: the formats and modes vaecodec encode reads."""
    astronaut, camera, coffee, chelsea = data.astronaut(), data.camera(), data.coffee(), data.chelsea()
    rgb = Image.fromarray(crop(astronaut, 60, 180, 24, 32))
    gray = Image.fromarray(crop(camera, 80, 200, 24, 32))
    rgba = with_alpha(crop(coffee, 100, 300, 24, 32), "RGBA")
    la = with_alpha(crop(camera, 200, 200, 24, 32), "LA")
    palette = Image.fromarray(crop(chelsea, 100, 200, 24, 32)).quantize(16)
    palette.info["transparency"] = 3
    wide = sixteen_bit(crop(camera, 100, 220, 24, 32))
    srgb = icc_profile("sRGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated 90 degrees
    frames = [Image.fromarray(crop(chelsea, 100 + 10 * k, 200, 24, 32)) for k in range(2)]
    cmyk, lab = rgb.convert("CMYK"), rgb.convert("LAB")
    tga = rgb.copy()
    seeds = {
        "rgb.png": saved(rgb, "PNG"),
        "l.png": saved(gray, "PNG"),
        "rgba.png": saved(rgba, "PNG"),
        "la.png": saved(la, "PNG"),
        "p-transparency.png": saved(palette, "PNG", transparency=3),
        "1-bit.png": saved(gray.convert("1"), "PNG"),
        "i16-gray-16-bit.png": saved(Image.fromarray(wide), "PNG"),
        "rgb-16-bit.png": png_16_bit_rgb(np.stack([wide, wide[::-1], wide[:, ::-1]], axis=-1)),
        "rgb-icc.png": saved(rgb, "PNG", icc_profile=srgb),
        "animated.png": saved(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100),
        "rgb-exif-rotated-icc.jpg": saved(rgb, "JPEG", quality=90, exif=exif, icc_profile=srgb),
        "cmyk.jpg": saved(cmyk, "JPEG", quality=90),
        "l.jpg": saved(gray, "JPEG", quality=90),
        "progressive.jpg": saved(rgb, "JPEG", quality=80, progressive=True),
        "rgb.tif": saved(rgb, "TIFF"),
        "i16-gray-16-bit.tif": saved(Image.fromarray(wide), "TIFF"),
        "f-float.tif": saved(Image.fromarray(wide.astype(np.float32) / 300), "TIFF"),
        "cmyk-lzw.tif": saved(cmyk, "TIFF", compression="tiff_lzw"),
        "lab.tif": saved(lab, "TIFF", icc_profile=icc_profile("LAB")),  # Pillow's own one is dated
        "two-pages.tif": saved(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
        "rgb.bmp": saved(rgb, "BMP"),
        "p.bmp": saved(palette, "BMP"),
        "animated-transparent.gif": saved(frames[0].quantize(32), "GIF", save_all=True,
                                          append_images=[frames[1].quantize(32)], transparency=0, duration=50),
        "rgb.ppm": saved(rgb, "PPM"),
        "gray-16-bit.pgm": b"P5 32 24 65535\n" + wide.astype(">u2").tobytes(),
        "1-bit.pbm": saved(gray.convert("1"), "PPM"),
        "rgba-lossless.webp": saved(rgba, "WEBP", lossless=True),
        "rgb.tga": saved(tga, "TGA", compression="tga_rle"),
        "rgba.vae": vaecodec.Codec(engine="onnxruntime", precision="fp32").compress(rgba, 60),
    }
    for name, content in seeds.items():  # each must be an image vaecodec encode reads
        read_image(io.BytesIO(content))
    return seeds


def write(folder: Path, files: dict[str, bytes]) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, content in files.items():
        assert len(content) < LIMIT, f"{name} is {len(content)} bytes"
        (folder / name).write_bytes(content)


def main() -> None:
    vae = vae_seeds()
    for target in VAE_TARGETS:
        write(CORPUS / target, vae)
    write(CORPUS / "compress", image_seeds())
    sizes = [path.stat().st_size for path in CORPUS.rglob("*") if path.is_file()]
    print(f"{CORPUS}: {len(sizes)} files, {sum(sizes):,} bytes, the largest {max(sizes):,}")
    assert sum(sizes) < 1_000_000


if __name__ == "__main__":
    main()
