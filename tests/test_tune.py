"""Tunes: the ssim weights beside the default (psnr) ones, through every interface, and files of
both tunes decoding with any codec."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vaecodec
from vaecodec.cli.main import main
from vaecodec.codec import get_codec
from vaecodec.format.container import parse
from vaecodec.model.bundle import bundle_id, tune_bundle_path

from conftest import needs_torch, psnr


@pytest.fixture(scope="module")
def ids() -> dict[str, bytes]:
    return {tune: bundle_id(tune_bundle_path(tune)) for tune in ("psnr", "ssim")}


def test_each_tune_has_its_own_packaged_weights(ids: dict[str, bytes]) -> None:
    assert None not in ids.values() and ids["psnr"] != ids["ssim"]
    assert get_codec(tune="ssim").tune == "ssim" and get_codec().tune == "psnr"


def test_the_api_codes_with_the_tunes_weights(photo: Image.Image, ids: dict[str, bytes]) -> None:
    ssim, default = vaecodec.compress(photo, 50, tune="ssim"), vaecodec.compress(photo, 50)
    assert parse(ssim).weights_id == ids["ssim"] and parse(default).weights_id == ids["psnr"]
    assert ssim == vaecodec.Codec(tune="ssim").compress(photo, 50)
    assert psnr(vaecodec.decompress(ssim), photo) > 25


def test_files_of_both_tunes_decode_with_one_codec(photo: Image.Image) -> None:
    for codec in (get_codec(), get_codec(tune="ssim")):
        for tune in ("psnr", "ssim"):
            data = vaecodec.compress(photo, 60, tune=tune)
            assert np.array_equal(np.asarray(codec.decompress(data)), np.asarray(get_codec(tune=tune).decompress(data)))


def test_the_command_line_and_info_name_the_tune(tmp_path: Path, photo: Image.Image, capsys) -> None:
    photo.save(tmp_path / "in.png")
    assert main(["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "ssim.vae"), "-q", "40", "--tune", "ssim"]) == 0
    assert main(["encode", str(tmp_path / "in.png"), "-o", str(tmp_path / "psnr.vae"), "-q", "40"]) == 0
    assert (tmp_path / "ssim.vae").read_bytes() == vaecodec.compress(photo, 40, tune="ssim")
    capsys.readouterr()
    assert main(["info", str(tmp_path / "ssim.vae"), str(tmp_path / "psnr.vae")]) == 0
    out = capsys.readouterr().out
    assert [line.split()[-1] for line in out.splitlines() if line.strip().startswith("tune")] == ["ssim", "psnr"]
    assert main(["decode", str(tmp_path / "ssim.vae"), "-o", str(tmp_path / "back.png")]) == 0
    assert Image.open(tmp_path / "back.png").size == photo.size


def test_the_pillow_plugin_takes_a_tune(photo: Image.Image) -> None:
    buffer = io.BytesIO()
    photo.save(buffer, "VAE", quality=50, tune="ssim")
    assert buffer.getvalue() == vaecodec.compress(photo, 50, tune="ssim")
    with Image.open(io.BytesIO(buffer.getvalue())) as opened:
        assert np.array_equal(np.asarray(opened.convert("RGB")), np.asarray(vaecodec.decompress(buffer.getvalue())))


@pytest.mark.parametrize("tune", ["SSIM", "mse", "", None, 1])
def test_bad_tunes_are_refused(photo: Image.Image, tune: object) -> None:
    with pytest.raises(vaecodec.VaecodecError, match="unknown tune"):
        vaecodec.compress(photo, 50, tune=tune)  # type: ignore[arg-type]
    with pytest.raises(vaecodec.VaecodecError, match="unknown tune"):
        photo.save(io.BytesIO(), "VAE", tune=tune)


def test_a_bad_tune_on_the_command_line_is_one_line(tmp_path: Path, photo: Image.Image, capsys) -> None:
    photo.save(tmp_path / "in.png")
    assert main(["encode", str(tmp_path / "in.png"), "--tune", "vmaf"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vaecodec: error: ") and err.count("\n") == 1 and "--tune" in err
    assert not (tmp_path / "in.vae").exists()


@needs_torch
def test_an_effort_refuses_the_ssim_weights_with_the_reason(photo: Image.Image) -> None:
    with pytest.raises(vaecodec.VaecodecError, match="tuned for ms-ssim"):
        vaecodec.compress(photo, 50, tune="ssim", effort=2)
