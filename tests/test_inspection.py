"""Looking inside (issue 27): the bit map read from a file's own coding tables, samples from the
prior, interpolations between two images' latents, and the commands around them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

import vaecodec
from vaecodec.cli.main import main
from vaecodec.codec import Codec
from vaecodec.entropy.coder import CodingTables
from vaecodec.format.container import parse
from vaecodec.generative import MAX_SAMPLE_SIDE

from conftest import psnr

try:
    import matplotlib  # noqa: F401
except ImportError:
    matplotlib = None
# vaecodec inspect draws its figures with matplotlib (the bench extra)
needs_plots = pytest.mark.skipif(matplotlib is None, reason='needs the bench extra: pip install "vaecodec[bench]"')

START_BITS = 64  # the ANS coder's state, flushed at the end of each stream: its overhead is at most this


def run(*args: object) -> int:
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def other_photo() -> Image.Image:
    """A second 96x128 photo (the coffee cup), for interpolations."""
    return Image.fromarray(data.coffee()[150:246, 200:328])


# -- the coder's tables --------------------------------------------------------------------------


def test_tables_price_and_draw_values_by_their_counts() -> None:
    tables = CodingTables(np.array([[1, 2, 12, 1, 16], [8, 8, 8, 4, 4]]))  # rows sum to 32
    values, indexes = np.array([[-2, 0, 2, 5], [-2, 0, 1, -9]]), np.array([[0, 0, 0, 0], [1, 1, 1, 1]])
    np.testing.assert_allclose(tables.information(values, indexes), [[5, np.log2(32 / 12), 1, 1], [2, 2, 3, 2]])
    draws = tables.sample(np.repeat([[0], [1]], 20_000, axis=1), np.random.default_rng(0))
    assert set(np.unique(draws[0])) == {-1, 0, 2}  # floor counts of 1 (values -2 and 1) are never drawn
    np.testing.assert_allclose(np.bincount(draws[1] + 2) / 20_000, np.array([8, 8, 8, 4, 4]) / 32, atol=0.02)
    again = tables.sample(np.repeat([[0], [1]], 20_000, axis=1), np.random.default_rng(0))
    np.testing.assert_array_equal(draws, again)


# -- the bit map -------------------------------------------------------------------------------


@pytest.mark.parametrize("quality", [0, 90])
def test_bit_map_adds_up_to_the_files_streams(codec: Codec, photo: Image.Image, quality: int) -> None:
    file_bytes = vaecodec.compress(photo, quality)
    file = parse(file_bytes)
    found = vaecodec.inspect(file_bytes, codec=codec)
    for information, stream in ((found.hyper_bits.sum(), file.hyper_stream), (found.latent_bits.sum(), file.latent_stream)):
        assert 0 <= 8 * len(stream) - information <= START_BITS + 32  # a partly filled last word at most besides
    assert found.block_bits.shape == (8, 8)  # 96x128 padded to 128x128: 8x8 blocks of 16x16
    assert found.block_bits.sum() == pytest.approx(found.latent_bits.sum() + found.hyper_bits.sum())
    assert found.block_bpp.shape == (6, 8)  # the blocks over the image
    assert found.channel_bits.sum() == pytest.approx(found.latent_bits.sum())
    np.testing.assert_array_equal(found.image, np.asarray(vaecodec.decompress(file_bytes)))
    summary = found.summary()
    assert summary["bytes"]["file"] == len(file_bytes) and summary["quality"] == quality
    assert summary["hyper_share"] == len(file.hyper_stream) / len(file_bytes)


def test_the_information_is_of_the_symbols_and_tables_the_file_was_coded_with(codec: Codec, photo: Image.Image) -> None:
    file = parse(vaecodec.compress(photo, 40))
    found = codec.symbol_information(file)
    coder = codec._main.coder
    # Coded again under the tables they name, the symbols give the file's stream back, byte for byte.
    assert coder.latent_tables.encode(found["symbols"], found["scale_indexes"]) == file.latent_stream
    z_symbols = found["z"] - coder.z_offsets[None, :, None, None]
    assert coder.hyper_tables.encode(z_symbols, coder._hyper_table_indexes(z_symbols.shape)) == file.hyper_stream
    counts = coder.latent_tables.counts
    first = (0, 0, 0, 0)
    expected = np.log2(counts[found["scale_indexes"][first]].sum()) - np.log2(
        counts[found["scale_indexes"][first], found["symbols"][first] + coder.latent_tables.radius])
    assert found["latent_bits"][first] == pytest.approx(expected)


def test_original_adds_psnr_maps(codec: Codec, photo: Image.Image) -> None:
    file_bytes = vaecodec.compress(photo, 60)
    found = vaecodec.inspect(file_bytes, photo, codec=codec)
    assert found.psnr == pytest.approx(psnr(photo, vaecodec.decompress(file_bytes)))
    assert found.block_psnr.shape == (6, 8) and 15 < found.block_psnr.min() <= found.block_psnr.max() <= 60
    with pytest.raises(vaecodec.VaecodecError, match="the original is 64x48 but the file's image is 128x96"):
        vaecodec.inspect(file_bytes, photo.resize((64, 48)), codec=codec)


def test_damaged_files_are_refused(codec: Codec, photo: Image.Image) -> None:
    file_bytes = vaecodec.compress(photo, 60)
    for damaged in (file_bytes[:-9], file_bytes[:20], b"", b"not a vae file at all, no"):
        with pytest.raises(vaecodec.VaecodecError):
            vaecodec.inspect(damaged, codec=codec)


# -- samples and interpolations ----------------------------------------------------------------


def test_sample_is_deterministic_per_seed(codec: Codec) -> None:
    first = vaecodec.sample(80, 48, 50, seed=7, codec=codec)
    assert first.size == (80, 48) and first.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(first), np.asarray(vaecodec.sample(80, 48, 50, seed=7, codec=codec)))
    other = np.asarray(vaecodec.sample(80, 48, 50, seed=8, codec=codec))
    assert np.abs(other.astype(int) - np.asarray(first)).mean() > 1
    assert np.asarray(first).std() > 1  # an image, not a flat field


@pytest.mark.parametrize("width, height, quality, seed, message", [
    (0, 64, 50, 0, "sample width must be a whole number from 1 to 4096, got 0"),
    (64, MAX_SAMPLE_SIDE + 1, 50, 0, "sample height must be a whole number from 1 to 4096, got 4097"),
    (64.0, 64, 50, 0, "sample width must be a whole number"),
    (64, 64, 101, 0, "quality must be a number from 0 to 100"),
    (64, 64, 50, -1, "seed must be a whole number from 0 up"),
])
def test_sample_refuses_bad_input(width: object, height: object, quality: float, seed: int, message: str) -> None:
    with pytest.raises(vaecodec.VaecodecError, match=message):
        vaecodec.sample(width, height, quality, seed)


def test_interpolation_ends_are_the_decoded_images(codec: Codec, photo: Image.Image, other_photo: Image.Image) -> None:
    frames = vaecodec.interpolate(photo, other_photo, 30, steps=3, codec=codec)
    assert len(frames) == 3 and all(frame.size == photo.size for frame in frames)
    for frame, image in ((frames[0], photo), (frames[-1], other_photo)):
        np.testing.assert_array_equal(np.asarray(frame), np.asarray(vaecodec.decompress(vaecodec.compress(image, 30))))
    middle = np.asarray(frames[1]).astype(int)
    assert all(np.abs(middle - np.asarray(end)).mean() > 5 for end in (frames[0], frames[-1]))


def test_interpolation_refuses_bad_input(photo: Image.Image) -> None:
    with pytest.raises(vaecodec.VaecodecError, match=r"the images differ in size \(128x96 and 64x96\)"):
        vaecodec.interpolate(photo, photo.crop((0, 0, 64, 96)))
    for steps in (1, 65, 2.5):
        with pytest.raises(vaecodec.VaecodecError, match="steps must be a whole number from 2 to 64"):
            vaecodec.interpolate(photo, photo, steps=steps)


# -- the commands ------------------------------------------------------------------------------


@needs_plots
def test_inspect_command_writes_figures_and_summary(tmp_path: Path, photo: Image.Image,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    photo.save(tmp_path / "photo.png")
    (tmp_path / "photo.vae").write_bytes(vaecodec.compress(photo, 50))
    assert run("inspect", tmp_path / "photo.vae", "--original", tmp_path / "photo.png", "--channels", "4") == 0
    out = tmp_path / "photo-inspect"
    text = capsys.readouterr().out
    assert "quality 50" in text and "hyper-latent stream" in text and "against" in text
    for name in ("bitmap.png", "channels.png", "channel_bits.png"):
        with Image.open(out / name) as figure:
            assert figure.format == "PNG" and figure.width > 300
        assert (out / name).stat().st_size < 400_000
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bytes"]["file"] == (tmp_path / "photo.vae").stat().st_size and len(summary["channels"]) == 4
    assert summary["psnr"] > 25
    # An existing output is kept without -f, and replaced with it.
    assert run("inspect", tmp_path / "photo.vae", "--out", out) == 1
    assert capsys.readouterr().err == f"vaecodec: error: {out / 'bitmap.png'} exists (use -f to overwrite)\n"
    assert run("inspect", tmp_path / "photo.vae", "--out", out, "-f", "--json") == 0
    assert json.loads(capsys.readouterr().out)["file"] == str(tmp_path / "photo.vae")


@needs_plots
def test_inspect_command_refuses_bad_input_in_one_line(tmp_path: Path, photo: Image.Image,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cut.vae").write_bytes(vaecodec.compress(photo, 50)[:-10])
    assert run("inspect", tmp_path / "cut.vae") == 1
    err = capsys.readouterr().err
    assert err.startswith("vaecodec: error: ") and err.count("\n") == 1
    assert run("inspect", tmp_path / "missing.vae") == 1
    assert capsys.readouterr().err == f"vaecodec: error: {tmp_path / 'missing.vae'}: no such file\n"
    (tmp_path / "photo.vae").write_bytes(vaecodec.compress(photo, 50))
    assert run("inspect", tmp_path / "photo.vae", "--channels", "0") == 1
    assert capsys.readouterr().err == "vaecodec: error: --channels must be a whole number from 1 to 64, got 0\n"
    assert run("inspect", tmp_path / "photo.vae", "--original", tmp_path / "missing.png") == 1
    assert capsys.readouterr().err == f"vaecodec: error: {tmp_path / 'missing.png'}: no such file\n"
    assert not any(path.name.endswith("-inspect") for path in tmp_path.iterdir())


def test_inspect_without_matplotlib_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delitem(sys.modules, "vaecodec.inspect_plots", raising=False)
    monkeypatch.delattr(vaecodec, "inspect_plots", raising=False)
    for name in [name for name in sys.modules if name == "matplotlib" or name.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an import finds where it is not installed
    assert run("inspect", tmp_path / "any.vae") == 1
    assert capsys.readouterr().err == 'vaecodec: error: vaecodec inspect needs matplotlib: pip install "vaecodec[bench]"\n'


def test_sample_command_is_deterministic_and_refuses_bad_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a.png", "b.png"):
        assert run("sample", "--size", "64x48", "-q", "40", "--seed", "3", "-o", tmp_path / name) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert Image.open(tmp_path / "a.png").size == (64, 48)
    assert run("sample", "--size", "64x48", "-o", tmp_path / "a.png") == 1
    assert capsys.readouterr().err == f"vaecodec: error: {tmp_path / 'a.png'} exists (use -f to overwrite)\n"
    assert run("sample", "--size", "5000x5000", "-o", tmp_path / "big.png") == 1
    assert capsys.readouterr().err == "vaecodec: error: sample width must be a whole number from 1 to 4096, got 5000\n"
    assert run("sample", "--size", "512", "-o", tmp_path / "bad.png") == 2
    assert capsys.readouterr().err.startswith("vaecodec: error: argument --size: size must be WIDTHxHEIGHT")
    assert run("sample", "-o", tmp_path / "bad.txt") == 1
    assert not any((tmp_path / name).exists() for name in ("big.png", "bad.png", "bad.txt"))


def test_interpolate_command_writes_a_strip(tmp_path: Path, photo: Image.Image, other_photo: Image.Image,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    photo.save(tmp_path / "a.png")
    other_photo.resize((150, 100)).save(tmp_path / "b.png")
    assert run("interpolate", tmp_path / "a.png", tmp_path / "b.png", "-o", tmp_path / "strip.png") == 1
    assert capsys.readouterr().err == (
        f"vaecodec: error: {tmp_path / 'a.png'} is 128x96 but {tmp_path / 'b.png'} is 150x100: interpolate needs "
        "images of one size (--fit scales and crops the second to the first's)\n")
    assert not (tmp_path / "strip.png").exists()
    assert run("interpolate", tmp_path / "a.png", tmp_path / "b.png", "--fit", "--steps", "3", "-q", "30",
               "-o", tmp_path / "strip.png") == 0
    strip = np.asarray(Image.open(tmp_path / "strip.png"))
    assert strip.shape == (96 + 8, 3 * (128 + 4) + 4, 3)
    first = np.asarray(vaecodec.decompress(vaecodec.compress(photo, 30)))
    np.testing.assert_array_equal(strip[4:100, 4:132], first)
