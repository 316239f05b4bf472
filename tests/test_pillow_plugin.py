"""The Pillow plugin: after ``import vaecodec``, .vae files open and save like any Pillow format."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vaecodec
import vaecodec.codec


def test_the_format_is_registered() -> None:
    assert Image.registered_extensions()[".vae"] == "VAE"
    assert Image.MIME["VAE"] == "image/x-vae"


def test_open_reads_the_header_and_decodes_on_load(tmp_path: Path, photo: Image.Image, monkeypatch) -> None:
    data = vaecodec.compress(photo, quality=40)
    path = tmp_path / "photo.vae"
    path.write_bytes(data)
    decodes = []
    real_get_codec = vaecodec.codec.get_codec

    def counting_get_codec(**options: str) -> vaecodec.Codec:
        decodes.append(1)
        return real_get_codec(**options)

    monkeypatch.setattr(vaecodec.codec, "get_codec", counting_get_codec)
    with Image.open(path) as im:
        assert (im.format, im.mode, im.size) == ("VAE", "RGB", photo.size)
        assert decodes == []
        pixels = np.asarray(im)
    assert decodes == [1]
    assert np.array_equal(pixels, np.asarray(vaecodec.decompress(data)))


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_open_keeps_the_original_mode(photo: Image.Image, mode: str) -> None:
    data = vaecodec.compress(photo.convert(mode))
    im = Image.open(io.BytesIO(data), formats=["VAE"])
    assert im.mode == mode
    assert np.array_equal(np.asarray(im), np.asarray(vaecodec.decompress(data)))


def test_save_writes_what_compress_gives(tmp_path: Path, photo: Image.Image) -> None:
    photo.save(tmp_path / "q60.vae", quality=60)
    assert (tmp_path / "q60.vae").read_bytes() == vaecodec.compress(photo, quality=60)
    buffer = io.BytesIO()
    photo.save(buffer, format="VAE")
    assert buffer.getvalue() == vaecodec.compress(photo)
    photo.save(tmp_path / "small.vae", size=900)
    assert (tmp_path / "small.vae").read_bytes() == vaecodec.compress(photo, size=900)


def test_opened_files_convert_to_other_formats(tmp_path: Path, photo: Image.Image) -> None:
    photo.save(tmp_path / "photo.vae")
    Image.open(tmp_path / "photo.vae").save(tmp_path / "photo.png")
    assert Image.open(tmp_path / "photo.png").size == photo.size


def test_a_damaged_file_says_why(photo: Image.Image) -> None:
    data = bytearray(vaecodec.compress(photo))
    data[40] ^= 0xFF
    with pytest.raises(vaecodec.VaecodecError, match="checksum"):
        Image.open(io.BytesIO(bytes(data)))


def test_a_bad_quality_is_refused(photo: Image.Image) -> None:
    with pytest.raises(vaecodec.VaecodecError, match="quality"):
        photo.save(io.BytesIO(), format="VAE", quality=101)
