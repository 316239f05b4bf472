"""Every kind of bad input: one line ``vaecodec: error: ...``, a non-zero exit, no file left behind;
and from the library, ``VaecodecError`` and nothing else.

The command line is run in-process (``main``) for speed, and as a real process where a traceback
would show. The .vae cases are derived from one valid file; those that change header fields
recompute the CRC so that the field itself is what gets refused.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import vaecodec
from vaecodec.cli.main import main
from vaecodec.format.container import VERSION, parse
from vaecodec.imageio import encode_alpha

from conftest import reseal, torch

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0  # root reads files whatever their permissions


def _flip_middle_bit(data: bytes) -> bytes:
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    return bytes(flipped)


def _noise(size: int) -> bytes:
    return np.random.default_rng(size).bytes(size)


# Damaged versions of a valid RGB file (its body is the file without the CRC), each with what the
# error message must say.
CORRUPTIONS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "empty": (lambda good: b"", "magic"),
    "truncated": (lambda good: good[: len(good) // 2], "truncated"),
    "random bytes": (lambda good: _noise(len(good)), "magic"),
    "random bytes after magic and version": (lambda good: b"VAEC\x01" + _noise(len(good)), "truncated"),
    "bit flipped": (_flip_middle_bit, "checksum"),
    "wrong magic": (lambda good: b"\x89PNG" + good[4:], "magic"),
    "newer version": (lambda good: reseal(good[:4] + bytes([VERSION + 1]) + good[5:-4]), "newer"),
    "absurd dimensions": (lambda good: reseal(good[:8] + struct.pack("<II", 65535, 65535) + good[16:-4]), "megapixels"),
    "streams too short for the size": (lambda good: reseal(good[:8] + struct.pack("<II", 65535, 2048) + good[16:-4]),
                                       "too short"),
    "garbage streams": (lambda good: reseal(good[:40] + _noise(len(good) - 44)), "stream"),
    "other weights": (lambda good: reseal(good[:16] + bytes(8) + good[24:-4]), "weights 0000000000000000"),
}


# What `info` refuses: it reads the header only, so streams and weights are not its business.
HEADER_CASES = ["empty", "truncated", "random bytes", "random bytes after magic and version", "bit flipped",
                "wrong magic", "newer version", "absurd dimensions"]


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims another size (CRC fixed): what a bomb looks like to a reader."""
    png = encode_alpha(np.zeros((1, 1), np.uint8))
    ihdr = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


@pytest.fixture(scope="module")
def good(photo: Image.Image) -> bytes:
    return vaecodec.compress(photo.crop((0, 0, 48, 32)), quality=50)


@pytest.fixture(scope="module")
def corrupt(good: bytes) -> dict[str, tuple[bytes, str]]:
    """Each case of CORRUPTIONS applied to ``good``: (bytes, what the message says)."""
    return {case: (damage(good), message) for case, (damage, message) in CORRUPTIONS.items()}


def files_under(folder: Path) -> set[Path]:
    """Every path under a folder, hidden temporary files included."""
    return set(folder.rglob("*"))


def assert_refused(args: list[str | Path], folder: Path, capsys: pytest.CaptureFixture[str], message: str) -> None:
    """The command fails with one error line saying ``message`` and leaves ``folder`` as it was."""
    before = files_under(folder)
    assert main([str(arg) for arg in args]) != 0
    err = capsys.readouterr().err
    assert err.startswith("vaecodec: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert files_under(folder) == before


# -- .vae files: decode, info, the API and the Pillow plugin ---------------------------------------

@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_decode_refuses(tmp_path: Path, corrupt: dict[str, tuple[bytes, str]], case: str, capsys) -> None:
    data, message = corrupt[case]
    (tmp_path / "bad.vae").write_bytes(data)
    assert_refused(["decode", tmp_path / "bad.vae", "-o", tmp_path / "out.png"], tmp_path, capsys, message)
    assert_refused(["decode", tmp_path / "bad.vae"], tmp_path, capsys, message)


@pytest.mark.parametrize("case", HEADER_CASES)
def test_info_refuses(tmp_path: Path, corrupt: dict[str, tuple[bytes, str]], case: str, capsys) -> None:
    data, message = corrupt[case]
    (tmp_path / "bad.vae").write_bytes(data)
    assert_refused(["info", tmp_path / "bad.vae"], tmp_path, capsys, message)


@pytest.mark.parametrize("command", ["decode", "info"])
def test_unreadable_vae_inputs(tmp_path: Path, command: str, capsys) -> None:
    (tmp_path / "folder.vae").mkdir()
    assert_refused([command, tmp_path / "missing.vae"], tmp_path, capsys, "no such file")
    assert_refused([command, tmp_path / "folder.vae"], tmp_path, capsys, "folder.vae")
    assert_refused([command, "/dev/null"], tmp_path, capsys, "magic")


@pytest.mark.skipif(ROOT, reason="root can read a file without read permission")
@pytest.mark.parametrize("command", ["encode", "decode", "info"])
def test_file_without_read_permission(tmp_path: Path, good: bytes, command: str, capsys) -> None:
    locked = tmp_path / ("locked.vae" if command != "encode" else "locked.png")
    locked.write_bytes(good)
    locked.chmod(0)
    assert_refused([command, locked], tmp_path, capsys, "ermission denied")


def test_api_raises_only_vaecodec_error(corrupt: dict[str, tuple[bytes, str]]) -> None:
    for case, (data, message) in corrupt.items():
        with pytest.raises(vaecodec.VaecodecError, match=message):
            vaecodec.decompress(data)


def test_other_weights_are_named(good: bytes, corrupt: dict[str, tuple[bytes, str]], codec: vaecodec.Codec) -> None:
    with pytest.raises(vaecodec.VaecodecError) as refused:
        vaecodec.decompress(corrupt["other weights"][0])
    assert str(refused.value) == (
        f"file was made with weights 0000000000000000, but the loaded weights are {codec.weights_id.hex()}; "
        "decode it with the vaecodec version that wrote it"
    )


@pytest.mark.parametrize("case", ["absurd dimensions", "streams too short for the size"])
def test_size_claims_are_refused_before_allocating(corrupt: dict[str, tuple[bytes, str]], codec, case: str) -> None:
    """65535x65535 fails in the header; 65535x2048 (within the pixel limit) before decoding a symbol."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(vaecodec.VaecodecError):
            codec.decompress(corrupt[case][0])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2
    assert peak < 100e6  # a decode of 134 megapixels would take gigabytes


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, on a 134-megapixel claim
def test_pillow_plugin_raises_clean_errors(corrupt: dict[str, tuple[bytes, str]]) -> None:
    """A file that starts like a .vae fails with VaecodecError (on open or on load); anything else
    is not a .vae file to Pillow, and gets its usual UnidentifiedImageError."""
    for case, (data, message) in corrupt.items():
        expected = vaecodec.VaecodecError if data.startswith(b"VAEC") else UnidentifiedImageError
        with pytest.raises(expected):
            Image.open(io.BytesIO(data)).load()


def test_alpha_plane_bomb_is_refused(good: bytes) -> None:
    """An RGBA file whose alpha PNG claims 60000x60000: refused from the PNG header."""
    bomb = replace(parse(good), mode="RGBA", alpha_plane=png_claiming(60000, 60000))
    with pytest.raises(vaecodec.VaecodecError, match="alpha plane"):
        vaecodec.decompress(bomb.to_bytes())


# -- images for encode, and options -----------------------------------------------------------------

@pytest.fixture()
def images(tmp_path: Path, photo: Image.Image) -> Path:
    """A folder of bad image inputs beside one good photo."""
    photo.save(tmp_path / "photo.png")
    png = (tmp_path / "photo.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(png[: len(png) // 2])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("a text file with an image's name")
    (tmp_path / "huge.png").write_bytes(png_claiming(12000, 12000))
    (tmp_path / "bomb.png").write_bytes(png_claiming(70000, 70000))
    (tmp_path / "no images").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "name, message",
    [
        ("truncated.png", "truncated"),
        ("empty.png", "not a readable image"),
        ("notes.png", "not a readable image"),
        ("huge.png", "larger than the 134 megapixels supported"),  # no Pillow warning line either
        ("bomb.png", "decompression bomb"),
        ("no images", "no image files in this folder"),
        ("missing.png", "no such file"),
    ],
)
def test_encode_refuses_unusable_images(images: Path, name: str, message: str, capsys) -> None:
    assert_refused(["encode", images / name], images, capsys, message)


def test_encode_refuses_garbage_on_stdin(images: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"not an image")))
    assert_refused(["encode", "-", "-o", images / "out.vae"], images, capsys, "-: not a readable image")


@pytest.mark.parametrize(
    "options, message",
    [
        (["-q", "1000"], "quality"),
        (["-q", "-1"], "quality"),
        (["-q", "nan"], "quality"),
        (["--device", "nonsense"], "device 'nonsense' cannot be used" if torch is not None else "needs torch"),
        (["--weights", "missing.pt"], "cannot read weights"),
        (["--weights", "photo.png"], "not a vaecodec weights file"),
        (["--out-dir", "elsewhere", "-o", "x.vae"], "not both"),
        (["--size", "0"], "size"),
        (["--size", "1"], "fit"),
        (["--bpp", "-1"], "bpp"),
        (["--psnr", "1000"], "psnr"),
    ],
)
def test_encode_refuses_impossible_options(images: Path, options: list[str], message: str, capsys, monkeypatch) -> None:
    monkeypatch.chdir(images)
    assert_refused(["encode", "photo.png", *options], images, capsys, message)


@pytest.mark.parametrize(
    "args, message",
    [
        (["decode", "photo.vae", "--format", "xyz"], "invalid choice"),
        (["decode", "photo.vae", "-o", "photo.xyz"], "unknown image extension"),
        (["decode", "photo.vae", "--device", "cuda:99"], "device 'cuda:99' cannot be used" if torch is not None else "needs torch"),
        (["encode"], "required"),
        (["info"], "required"),
    ],
)
def test_other_impossible_arguments(images: Path, good: bytes, args: list[str], message: str, capsys, monkeypatch) -> None:
    monkeypatch.chdir(images)
    (images / "photo.vae").write_bytes(good)
    assert_refused(args, images, capsys, message)


@pytest.mark.parametrize("command, name", [("decode", "bad.vae"), ("encode", "truncated.png")])
def test_a_real_process_prints_one_line_and_no_traceback(images: Path, corrupt, command: str, name: str) -> None:
    (images / "bad.vae").write_bytes(corrupt["garbage streams"][0])
    before = files_under(images)
    result = subprocess.run([sys.executable, "-m", "vaecodec.cli.main", command, str(images / name)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("vaecodec: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert files_under(images) == before
