"""Files written by shipped weights keep decoding: the committed files of ``tests/compat``.

Each was coded by ``tests/compat/make_files.py`` with the weights its name starts with, and
decoded in fp32 to the PNG beside it. Later versions must find those weights (by the header's id,
whatever weights they load) and decode the file to the same pixels; re-encoding the same image
with the same weights must still give the same file. The float transforms may round differently
on another CPU (pixels within one level; ``tests/test_determinism.py``), so exact equality is
required of nearly every pixel rather than all.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vaecodec
from vaecodec.format.container import parse
from vaecodec.model.bundle import bundle_id, packaged_bundle_path, tune_bundle_path

from conftest import needs_torch

COMPAT = Path(__file__).parent / "compat"
FILES = sorted(COMPAT.glob("*.vae"))
sys.path.insert(0, str(COMPAT))
from make_files import images  # noqa: E402  (the images the files were made from)


def assert_same_pixels(decoded: np.ndarray, reference: np.ndarray) -> None:
    difference = np.abs(decoded.astype(int) - reference.astype(int))
    assert difference.max() <= 1 and (difference == 0).mean() >= 0.99


def test_there_are_files_of_the_shipped_weights() -> None:
    assert any(path.name.startswith(bundle_id(tune_bundle_path("psnr")).hex()) for path in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.stem)
def test_committed_file_decodes_to_the_same_pixels_in_fp32(path: Path) -> None:
    data = path.read_bytes()
    reference = np.asarray(Image.open(path.with_suffix(".png")))
    assert packaged_bundle_path(parse(data).weights_id) is not None
    assert_same_pixels(np.asarray(vaecodec.decompress(data, precision="fp32")), reference)


@needs_torch
@pytest.mark.parametrize("path", FILES, ids=lambda path: path.stem)
def test_a_codec_of_other_weights_finds_the_files_own(path: Path, tmp_path: Path) -> None:
    from vaecodec.model.hyperprior import HyperpriorModel, ModelConfig
    from vaecodec.model.weights import save_weights

    data = path.read_bytes()
    other = tmp_path / "other.pt"
    save_weights(HyperpriorModel(ModelConfig(8, 12)), other)  # and its bundle, other.npz
    for weights in (other, other.with_suffix(".npz")):
        decoded = vaecodec.Codec(weights, precision="fp32").decompress(data)
        assert_same_pixels(np.asarray(decoded), np.asarray(Image.open(path.with_suffix(".png"))))


@needs_torch
@pytest.mark.parametrize("path", FILES, ids=lambda path: path.stem)
def test_the_runtime_and_torch_decode_to_the_same_symbols(path: Path) -> None:
    """The engine changed: every committed file decodes through ONNX Runtime and through torch to
    the same symbols, exactly, and to pixels within one level."""
    data = path.read_bytes()
    file = parse(data)
    runtime, torch_path = vaecodec.Codec(engine="onnxruntime"), vaecodec.Codec(engine="torch", precision="fp32")
    first, second = (codec.symbol_information(file) for codec in (runtime, torch_path))
    for key in ("z", "symbols", "scale_indexes"):
        assert np.array_equal(first[key], second[key])
    assert np.abs(runtime.pixels(file).astype(int) - torch_path.pixels(file)).max() <= 1


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.stem)
def test_the_same_image_still_codes_to_the_same_file(path: Path) -> None:
    committed = path.read_bytes()
    _, name, quality = path.stem.split("-")
    codec = vaecodec.Codec(packaged_bundle_path(parse(committed).weights_id), precision="fp32")
    coded = codec.compress(images()[name], int(quality[1:]))
    if coded != committed:  # another CPU's float analysis may round a latent differently
        assert abs(len(coded) - len(committed)) <= 0.02 * len(committed)
        assert_same_pixels(np.asarray(codec.decompress(coded)),
                           np.asarray(Image.open(path.with_suffix(".png"))))
