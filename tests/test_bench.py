"""vaecodec bench: BD-rate on curves with known answers, the metrics against scikit-image, the report
writer on synthetic results, and small end-to-end runs of the command."""

from __future__ import annotations

import csv
import io
import os
import json
import urllib.error
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("matplotlib", reason='the bench needs the bench extra: pip install "vaecodec[bench]"')
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vaecodec.bench import codecs as bench_codecs
from vaecodec.bench import dataset
from vaecodec.bench.bdrate import BdRateError, bd_rate
from vaecodec.bench.codecs import BenchOptions, Unavailable, build_codecs
from vaecodec.cli.bench import parse_qualities
from vaecodec.bench.metrics import MS_SSIM_WEIGHTS, ms_ssim, ms_ssim_db, psnr, ssim
from vaecodec.bench.report import write_report
from vaecodec.bench.run import BenchConfig, Plan, VisualSettings, new_results, run, save_results
from vaecodec.cli.main import main
from vaecodec.errors import VaecodecError

PSNRS = np.array([26.0, 29.0, 32.0, 35.0, 38.0])
RATES = np.exp(PSNRS / 6) / 200  # log-rate linear in PSNR: 6 dB per factor e


# -- BD-rate -------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["cubic", "pchip"])
@pytest.mark.parametrize("factor", [0.5, 2.0, 0.8])
def test_scaled_rates_give_the_scale_as_bd_rate(method: str, factor: float) -> None:
    result = bd_rate((RATES, PSNRS), (RATES * factor, PSNRS), method)
    assert result.percent == pytest.approx(100 * (factor - 1), abs=1e-9)
    assert (result.low, result.high, result.coverage) == (26.0, 38.0, 1.0)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_a_curve_shifted_in_quality_saves_the_known_rate(method: str) -> None:
    # 1.5 dB better at every rate: at equal PSNR the rate shrinks by exp(-1.5 / 6).
    result = bd_rate((RATES, PSNRS), (RATES, PSNRS + 1.5), method)
    assert result.percent == pytest.approx(100 * np.expm1(-1.5 / 6), abs=1e-9)
    assert (result.low, result.high) == (27.5, 38.0)


def test_partial_overlap_is_measured_on_the_common_range_only() -> None:
    result = bd_rate((RATES, PSNRS), (RATES[1:] * 0.5, PSNRS[1:]))
    assert result.percent == pytest.approx(-50)
    assert (result.low, result.high, result.coverage) == (29.0, 38.0, 1.0)
    shifted = bd_rate((RATES, PSNRS), (RATES * 0.5, PSNRS + 6))
    assert shifted.coverage == pytest.approx(0.5)


def test_curves_without_a_bd_rate_say_why() -> None:
    with pytest.raises(BdRateError, match="no overlap"):
        bd_rate((RATES, PSNRS), (RATES, PSNRS + 20))
    with pytest.raises(BdRateError, match="under 4 points"):
        bd_rate((RATES, PSNRS), (RATES[:3], PSNRS[:3]))
    assert bd_rate((RATES, PSNRS), (RATES[:3] * 0.5, PSNRS[:3]), "pchip").percent == pytest.approx(-50)


def test_pchip_accepts_points_of_equal_quality() -> None:
    rates, psnrs = np.append(RATES, RATES[2]), np.append(PSNRS, PSNRS[2])
    assert bd_rate((RATES, PSNRS), (rates * 0.5, psnrs), "pchip").percent == pytest.approx(-50)


# -- metrics -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    """A 128x160 photo and a noisy copy."""
    original = data.astronaut()[40:168, 140:300]
    noise = np.random.default_rng(0).normal(0, 8, original.shape)
    return original, np.clip(original + noise, 0, 255).astype(np.uint8)


def test_psnr_and_ssim_agree_with_scikit_image(pair: tuple[np.ndarray, np.ndarray]) -> None:
    original, noisy = pair
    assert psnr(original, noisy) == pytest.approx(peak_signal_noise_ratio(original, noisy, data_range=255), rel=1e-12)
    expected = structural_similarity(original, noisy, channel_axis=2, data_range=255, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False)
    assert ssim(original, noisy) == pytest.approx(expected, rel=1e-12)


def test_ms_ssim_at_one_scale_is_scikit_image_ssim(pair: tuple[np.ndarray, np.ndarray]) -> None:
    original, noisy = pair
    assert ms_ssim(original, noisy, weights=(1.0,)) == pytest.approx(ssim(original, noisy), rel=1e-9)


def test_ms_ssim_properties(pair: tuple[np.ndarray, np.ndarray]) -> None:
    original, noisy = pair
    assert ms_ssim(original, original) == pytest.approx(1.0)
    assert ms_ssim(original, noisy) == pytest.approx(ms_ssim(noisy, original))
    rng = np.random.default_rng(1)
    values = [ms_ssim(original, np.clip(original + rng.normal(0, s, original.shape), 0, 255).astype(np.uint8))
              for s in (2, 5, 10, 20, 40)]
    assert all(1 > a > b > 0 for a, b in zip(values, values[1:]))
    # 128 pixels hold four scales of an 11x11 window (the fourth is 16 wide): the first four weights.
    assert ms_ssim(original, noisy) == pytest.approx(ms_ssim(original, noisy, weights=MS_SSIM_WEIGHTS[:4]))
    assert ms_ssim(original, noisy) != pytest.approx(ms_ssim(original, noisy, weights=MS_SSIM_WEIGHTS[:3]))
    assert ms_ssim_db(0.99) == pytest.approx(20.0)


# -- results and report --------------------------------------------------------------------------

def _fake_codec(name: str, label: str):
    return bench_codecs.BenchCodec(name, label, "quality", f"{label} 1.0", (0, 100), True,
                                   lambda pixels, q: b"", lambda data: np.zeros((1, 1, 3), np.uint8))


def _config(anchors: list[dict] | None = None) -> BenchConfig:
    return BenchConfig(qualities={}, repeats=1, visual=VisualSettings(32, 0.5, ["vaecodec", "jpeg", "webp"]),
                       plot_max_bpp=2.0, anchors=anchors or [])


def test_report_writer_on_synthetic_results(tmp_path: Path) -> None:
    """WebP at 0.8 times JPEG's rates: its BD-rate must read -20.0 % on both metrics."""
    codecs = [_fake_codec("jpeg", "JPEG"), _fake_codec("webp", "WebP")]
    images = [tmp_path / "kodim01.png", tmp_path / "kodim02.png"]
    plan = Plan(images, codecs, {"jpeg": [10, 30, 50, 70, 90], "webp": [10, 30, 50, 70, 90]}, repeats=1)
    anchor = {"name": "paper-codec", "reference": "Someone 2020", "source": "https://example.org/curve.json",
              "bpp": [0.2, 0.5, 1.0, 1.5], "psnr": [28.0, 31.0, 34.0, 36.0], "ms_ssim": [0.93, 0.96, 0.98, 0.99]}
    results = new_results(plan, {"jxl": "imagecodecs is not installed"}, _config([anchor]), tmp_path, "vaecodec bench x", 2)
    for image in images:
        for codec, scale in (("jpeg", 1.0), ("webp", 0.8)):
            for quality, value in zip(plan.qualities[codec], PSNRS):
                bpp = float(np.exp(value / 6) / 200 * scale)
                results["records"].append({"image": image.name, "codec": codec, "quality": quality, "bytes": 1000 * bpp,
                                           "bpp": bpp, "psnr": value, "ssim": 0.9, "ms_ssim": 1 - 10 ** (-value / 20),
                                           "encode_s": 0.01, "decode_s": 0.002})
    results["complete"] = True
    out = tmp_path / "out"
    out.mkdir()
    save_results(results, out)
    write_report(results, out)

    for name in ("results.json", "results.csv", "report.md", "rd_psnr.png", "rd_ms_ssim.png", "speed.png"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "results.json").read_text())
    webp = saved["bd_rate"]["measured"]["webp"]
    for metric in ("psnr", "ms_ssim_db"):
        assert webp[metric]["cubic"]["percent"] == pytest.approx(-20, abs=1e-3)
    assert [row["images"] for row in saved["summary"]["jpeg"]] == [2] * 5
    rows = list(csv.DictReader(io.StringIO((out / "results.csv").read_text())))
    assert len(rows) == 20 + 10 and rows[-1]["image"] == "mean"
    report = (out / "report.md").read_text()
    assert "| WebP | -20.0 % | -20.0 % |" in report
    assert "not measured here" in report and "paper-codec" in report and "https://example.org/curve.json" in report
    assert "Skipped jxl: imagecodecs is not installed" in report
    assert "## Machine and versions" in report and "| vaecodec threads |" in report and "Incomplete" not in report
    assert "load average" not in report  # not recorded by this run
    for load, says in ((9.0, "Other work shared the machine: the 1-minute load average reached 9.0"),
                       (1.2, "No other work was seen: the 1-minute load average stayed at or under 1.2")):
        write_report({**results, "highest_load": load}, out)
        assert says in (out / "report.md").read_text()


def test_ctrl_c_keeps_the_finished_images(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(3):
        Image.fromarray(data.astronaut()[::8, ::8][:, index:index + 48]).save(folder / f"image{index}.png")
    (jpeg,), _ = build_codecs(["jpeg"], BenchOptions(threads=1))
    calls = []

    def encode(pixels: np.ndarray, quality: float) -> bytes:
        calls.append(quality)
        if len(calls) > 2:  # the second image's first encode
            raise KeyboardInterrupt
        return jpeg.encode(pixels, quality)

    plan = Plan(dataset.list_images(folder), [replace(jpeg, encode=encode)], {"jpeg": [40, 80]}, repeats=1)
    results = new_results(plan, {}, _config(), folder, "vaecodec bench images", 1)
    with pytest.raises(KeyboardInterrupt):
        run(plan, results, tmp_path / "out", _config().visual, show_progress=False)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert not saved["complete"]
    assert {r["image"] for r in saved["records"]} == {"image0.png"} and len(saved["records"]) == 2
    assert "Incomplete: stopped after 1 of 3 images" in (tmp_path / "out" / "report.md").read_text()


# -- the command ---------------------------------------------------------------------------------

@pytest.fixture()
def tiny_folder(tmp_path: Path) -> Path:
    """Two 64x64 photos (the astronaut, downscaled, and a crop of her face)."""
    folder = tmp_path / "images"
    folder.mkdir()
    astronaut = Image.fromarray(data.astronaut())
    astronaut.resize((64, 64), Image.Resampling.LANCZOS).save(folder / "a.png")
    astronaut.crop((160, 40, 288, 168)).resize((64, 64), Image.Resampling.LANCZOS).save(folder / "b.png")
    return folder


def test_bench_command_end_to_end(tiny_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    def missing(options: BenchOptions):
        raise Unavailable("imagecodecs is not installed")

    monkeypatch.setitem(bench_codecs.CODECS, "jxl", missing)
    out = tmp_path / "out"
    status = main(["bench", str(tiny_folder), "--out", str(out), "--codecs", "jpeg,webp,vaecodec,jxl",
                   "--qualities", "30,70", "--repeats", "1", "--threads", "1", "--quiet"])
    assert status == 0
    assert "skipping jxl: imagecodecs is not installed" in capsys.readouterr().err
    for name in ("results.json", "results.csv", "report.md", "rd_psnr.png", "rd_ms_ssim.png", "speed.png", "visual.png"):
        assert (out / name).stat().st_size > 0, name

    results = json.loads((out / "results.json").read_text())
    assert results["complete"] and results["skipped"] == {"jxl": "imagecodecs is not installed"}
    assert len(results["records"]) == 2 * 3 * 2
    for record in (r for r in results["records"] if r["codec"] == "jpeg"):
        buffer = io.BytesIO()
        Image.open(tiny_folder / record["image"]).convert("RGB").save(buffer, "JPEG", quality=record["quality"])
        assert record["bytes"] == len(buffer.getvalue())
        assert record["bpp"] == pytest.approx(8 * len(buffer.getvalue()) / 64**2, abs=1e-6)
        decoded = np.asarray(Image.open(buffer))
        assert record["psnr"] == pytest.approx(psnr(np.asarray(Image.open(tiny_folder / record["image"])), decoded), abs=1e-4)
    assert [p["codec"] for p in results["visual"]["panels"]] == ["vaecodec", "jpeg", "webp"]
    report = (out / "report.md").read_text()
    assert "under 4 points" in report
    if hasattr(os, "getloadavg"):  # the load the run saw, and what the report makes of it
        assert results["highest_load"] >= 0
        assert "Other work shared the machine" in report or "No other work was seen" in report


def test_bench_command_errors(tiny_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out")
    assert main(["bench", str(tiny_folder), "--out", out, "--codecs", "jpeg,gif"]) == 1
    assert "unknown codec 'gif'" in capsys.readouterr().err
    assert main(["bench", "--out", out]) == 2
    assert main(["bench", str(tiny_folder), "--dataset", "kodak", "--out", out]) == 2
    assert main(["bench", str(tiny_folder), "--out", out, "--codecs", "jpeg", "--qualities", "jpeg=101"]) == 1
    assert "jpeg qualities are whole numbers from 0 to 100" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "nowhere"), "--out", out]) == 1
    assert not (tmp_path / "out").exists()


def test_qualities_option() -> None:
    assert parse_qualities(["10,50", "jpeg=20,40.5"], ["jpeg", "webp"]) == {"jpeg": [20, 40.5], "webp": [10, 50]}
    with pytest.raises(VaecodecError, match="avif is not among"):
        parse_qualities(["avif=10"], ["jpeg"])


def test_kodak_download_failure_says_where_to_put_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(dataset.urllib.request, "urlopen", offline)
    assert main(["bench", "--dataset", "kodak", "--out", str(tmp_path / "out")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("vaecodec: error: could not download the Kodak images (network is unreachable)")
    assert str(tmp_path / "cache" / "vaecodec" / "kodak") in error and error.count("\n") == 1
    # Files already in the cache are used without the network.
    cache = dataset.kodak_cache()
    cache.mkdir(parents=True)
    for name in dataset.KODAK_NAMES[:2]:
        Image.new("RGB", (16, 16)).save(cache / name)
    assert dataset.kodak_folder(limit=2) == cache
    assert dataset.is_kodak(dataset.list_images(cache)) and not dataset.is_kodak([tmp_path / "a.png"])
