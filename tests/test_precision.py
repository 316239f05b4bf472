"""Precision of the float transforms: bf16 where the CPU has it, fp32 everywhere, files across both.

The entropy parameters are integers, so a file coded at one precision decodes at the other: the
streams decode to the end, and only the synthesis's rounding differs (README states the measured
difference; the bound here is looser).
"""

from __future__ import annotations


import numpy as np
import pytest
torch = pytest.importorskip("torch", reason="needs the torch extra")
from PIL import Image

import vaecodec
from vaecodec.cli.main import main
from vaecodec.engine import installed
from vaecodec.model import precision as precision_module
from vaecodec.model.precision import native_bf16, resolve_precision

from conftest import psnr

needs_bf16 = pytest.mark.skipif(not native_bf16(torch.device("cpu")), reason="this CPU has no native bf16")


@pytest.fixture
def no_native_bf16(monkeypatch) -> None:
    """A CPU without native bf16, as torch and OpenVINO (the engine "auto" picks where installed) would report it."""
    monkeypatch.setattr(precision_module, "native_bf16", lambda device: False)
    if installed("openvino"):
        from vaecodec.engine import openvino_engine

        monkeypatch.setattr(openvino_engine, "native_bf16", lambda: False)


def test_auto_falls_back_to_fp32_without_native_bf16(no_native_bf16) -> None:
    assert resolve_precision("auto", torch.device("cpu")) == torch.float32
    assert vaecodec.Codec(precision="auto").precision == "fp32"


def test_asking_for_bf16_without_it_is_an_error_not_a_slowdown(no_native_bf16, photo: Image.Image, tmp_path, capsys) -> None:
    with pytest.raises(vaecodec.VaecodecError, match="bf16 is not native"):
        vaecodec.Codec(precision="bf16")
    photo.save(tmp_path / "photo.png")
    assert main(["encode", str(tmp_path / "photo.png"), "--precision", "bf16"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("vaecodec: error: bf16 is not native") and error.count("\n") == 1
    assert not (tmp_path / "photo.vae").exists()


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(vaecodec.VaecodecError, match="precision must be one of"):
        vaecodec.Codec(precision="fp16")


def test_forced_fp32_codes_and_decodes(photo: Image.Image) -> None:
    codec = vaecodec.Codec(precision="fp32")
    data = codec.compress(photo, quality=60)
    assert codec.precision == "fp32" and psnr(photo, codec.decompress(data)) > 25


@needs_bf16
def test_files_cross_between_bf16_and_fp32(photo: Image.Image) -> None:
    """Either precision decodes the other's files; the two decodes of a file differ by rounding only."""
    fp32, bf16 = vaecodec.Codec(precision="fp32"), vaecodec.Codec(precision="bf16")
    assert bf16.precision == "bf16"
    for quality in (0, 60, 100):
        for encoder in (fp32, bf16):
            data = encoder.compress(photo, quality)
            a, b = (np.asarray(decoder.decompress(data)).astype(int) for decoder in (fp32, bf16))
            assert np.abs(a - b).max() <= 16 and psnr(a.astype(np.uint8), b.astype(np.uint8)) >= 40
        # bf16 analysis rounds latents now and then, but codes the same picture at about the same size
        sizes = [len(encoder.compress(photo, quality)) for encoder in (fp32, bf16)]
        assert abs(sizes[0] - sizes[1]) <= 0.05 * sizes[0] + 8


@needs_bf16
def test_rate_control_and_tensors_follow_the_precision(photo: Image.Image) -> None:
    bf16 = vaecodec.Codec(precision="bf16")
    data = bf16.compress(photo, size=1200)
    assert len(data) <= 1200
    assert data == vaecodec.compress(photo, size=1200, precision="bf16")
    tensor = torch.from_numpy(np.array(photo)).permute(2, 0, 1).float() / 255
    assert bf16.compress_tensor(tensor, 50) == bf16.compress(photo, 50)
