"""Rate control: size and bpp targets are never exceeded and nearly reached; PSNR targets are met."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

import vaecodec
from vaecodec.cli.main import main
from vaecodec.format.container import parse

from conftest import psnr


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """An ordinary photo of 256x192 (a coffee cup)."""
    return np.asarray(Image.fromarray(data.coffee()).resize((256, 192), Image.LANCZOS))


@pytest.mark.parametrize("quality", [20, 60])
def test_size_lands_within_15_percent_below_the_target(scene: np.ndarray, quality: float) -> None:
    target = round(len(vaecodec.compress(scene, quality=quality)) * 1.07)
    data_ = vaecodec.compress(scene, size=target)
    assert 0.85 * target <= len(data_) <= target
    assert parse(data_).quality >= quality


def test_bpp_target_is_a_size_target(scene: np.ndarray) -> None:
    data_ = vaecodec.compress(scene, bpp=0.5)
    assert data_ == vaecodec.compress(scene, size=int(0.5 * 256 * 192 / 8))
    assert 0.85 * 0.5 <= parse(data_).bits_per_pixel <= 0.5


def test_psnr_target_gives_the_smallest_file_that_reaches_it(scene: np.ndarray) -> None:
    best = psnr(vaecodec.decompress(vaecodec.compress(scene, quality=100)), scene)
    worst = psnr(vaecodec.decompress(vaecodec.compress(scene, quality=0)), scene)
    target = (best + worst) / 2
    data_ = vaecodec.compress(scene, psnr=target)
    assert psnr(vaecodec.decompress(data_), scene) >= target
    lower = parse(data_).quality - 0.01
    assert psnr(vaecodec.decompress(vaecodec.compress(scene, quality=lower)), scene) < target


def test_impossible_targets_are_refused(scene: np.ndarray) -> None:
    with pytest.raises(vaecodec.VaecodecError, match="cannot fit"):
        vaecodec.compress(scene, size=50)
    with pytest.raises(vaecodec.VaecodecError, match="cannot reach"):
        vaecodec.compress(scene, psnr=99)
    with pytest.raises(vaecodec.VaecodecError, match="one of"):
        vaecodec.compress(scene, quality=50, size=1000)
    for bad in ({"size": 0}, {"size": 2.5}, {"bpp": -1}, {"psnr": 0}):
        with pytest.raises(vaecodec.VaecodecError):
            vaecodec.compress(scene, **bad)


def test_cli_size_option(scene: np.ndarray, tmp_path: Path, capsys) -> None:
    Image.fromarray(scene).save(tmp_path / "scene.png")
    assert main(["encode", str(tmp_path / "scene.png"), "--size", "3KB"]) == 0
    size = (tmp_path / "scene.vae").stat().st_size
    assert 0.85 * 3000 <= size <= 3000
    assert main(["encode", str(tmp_path / "scene.png"), "-o", str(tmp_path / "k.vae"), "--size", "3KiB"]) == 0
    assert 3000 < (tmp_path / "k.vae").stat().st_size <= 3072
    assert main(["encode", str(tmp_path / "scene.png"), "-o", str(tmp_path / "b.vae"), "--bpp", "0.4"]) == 0
    assert parse((tmp_path / "b.vae").read_bytes()).bits_per_pixel <= 0.4
    assert main(["encode", str(tmp_path / "scene.png"), "-o", str(tmp_path / "x.vae"), "--size", "3KB", "-q", "5"]) == 2
    assert main(["encode", str(tmp_path / "scene.png"), "-o", str(tmp_path / "x.vae"), "--size", "lots"]) == 2
    assert main(["encode", str(tmp_path / "scene.png"), "-o", str(tmp_path / "x.vae"), "--psnr", "99"]) == 1
    assert "cannot reach" in capsys.readouterr().err
    assert not (tmp_path / "x.vae").exists()
