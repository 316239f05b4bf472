"""The Python API: every accepted input type, odd sizes, determinism, quality and weights checks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import vaecodec
from vaecodec.format.container import parse

from conftest import needs_torch, torch, psnr


def test_pil_round_trip_is_faithful(photo: Image.Image) -> None:
    data = vaecodec.compress(photo)
    out = vaecodec.decompress(data)
    assert out.mode == "RGB" and out.size == photo.size
    assert parse(data).quality == 75
    assert psnr(out, photo) > 27


def test_numpy_and_pil_inputs_give_the_same_bytes(photo: Image.Image) -> None:
    assert vaecodec.compress(np.asarray(photo), quality=40) == vaecodec.compress(photo, quality=40)


@needs_torch
def test_tensor_input_matches_pil(photo: Image.Image) -> None:
    tensor = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1).float() / 255
    assert vaecodec.compress(tensor, quality=40) == vaecodec.compress(photo, quality=40)


@pytest.mark.parametrize("as_array", [False, True])
def test_grayscale_comes_back_grayscale(gray_photo: Image.Image, as_array: bool) -> None:
    source = np.asarray(gray_photo) if as_array else gray_photo
    out = vaecodec.decompress(vaecodec.compress(source, quality=80))
    assert out.mode == "L" and out.size == gray_photo.size
    assert psnr(out, gray_photo) > 25


@needs_torch
def test_single_channel_tensor_is_grayscale(gray_photo: Image.Image) -> None:
    tensor = torch.from_numpy(np.asarray(gray_photo).copy()).float()[None] / 255
    assert parse(vaecodec.compress(tensor)).mode == "L"


@pytest.mark.parametrize("width, height", [(1, 1), (17, 33), (64, 64), (130, 7)])
def test_any_size_round_trips(photo: Image.Image, width: int, height: int) -> None:
    image = photo.crop((0, 0, width, height))
    out = vaecodec.decompress(vaecodec.compress(image))
    assert out.size == (width, height)
    assert np.abs(np.asarray(out, float) - np.asarray(image, float)).mean() < 25


def test_same_input_gives_same_bytes_even_from_a_new_codec(photo: Image.Image) -> None:
    first = vaecodec.compress(photo, quality=55)
    assert vaecodec.compress(photo, quality=55) == first
    assert vaecodec.Codec().compress(photo, quality=55) == first


def test_decoding_is_deterministic(photo: Image.Image) -> None:
    data = vaecodec.compress(photo, quality=30)
    assert np.array_equal(np.asarray(vaecodec.decompress(data)), np.asarray(vaecodec.decompress(data)))


def test_quality_trades_size_for_fidelity(photo: Image.Image) -> None:
    sizes, scores = [], []
    for quality in (0, 25, 50, 75, 100):
        data = vaecodec.compress(photo, quality=quality)
        sizes.append(len(data))
        scores.append(psnr(vaecodec.decompress(data), photo))
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    assert scores == sorted(scores)
    assert scores[-1] - scores[0] > 5


def test_fractional_quality_lies_between_its_neighbours(photo: Image.Image) -> None:
    low, mid, high = (len(vaecodec.compress(photo, quality=q)) for q in (60, 60.5, 61))
    assert low <= mid <= high
    assert parse(vaecodec.compress(photo, quality=60.5)).quality == 60.5


@pytest.mark.parametrize("quality", [-1, 100.5, "75", float("nan")])
def test_invalid_quality_is_refused(photo: Image.Image, quality) -> None:
    with pytest.raises(vaecodec.VaecodecError, match="quality"):
        vaecodec.compress(photo, quality=quality)


@pytest.mark.parametrize(
    "image",
    [np.zeros((8, 8, 5), np.uint8), np.zeros((8, 8), np.float32), "x.png",
     *([torch.zeros(2, 8, 8), torch.zeros(3, 8, 8, dtype=torch.uint8)] if torch is not None else [])],
)
def test_unsupported_inputs_are_refused(image) -> None:
    with pytest.raises(vaecodec.VaecodecError):
        vaecodec.compress(image)


def test_files_from_other_weights_are_refused(photo: Image.Image) -> None:
    data = bytearray(vaecodec.compress(photo))
    data[16:24] = b"\x00" * 8
    import struct
    import zlib

    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    with pytest.raises(vaecodec.VaecodecError, match="weights"):
        vaecodec.decompress(bytes(data))


@needs_torch
def test_codec_tensors_in_and_out(codec: vaecodec.Codec, photo: Image.Image) -> None:
    batch = torch.from_numpy(np.stack([np.asarray(photo), np.asarray(photo)[::-1]]).copy()).permute(0, 3, 1, 2) / 255
    files = codec.compress_tensor(batch, quality=50)
    assert isinstance(files, list) and len(files) == 2
    assert files[0] == codec.compress(photo, quality=50)
    decoded = codec.decompress_tensor(files)
    assert decoded.shape == batch.shape and decoded.dtype == torch.float32
    assert 0 <= decoded.min() and decoded.max() <= 1
    assert torch.equal(decoded[0], codec.decompress_tensor(files[0]))
    assert (decoded - batch).abs().mean() < 0.05
