"""Training: a tiny run through the CLI writes a log, a checkpoint and weights that code images."""

from __future__ import annotations

import csv
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
torch = pytest.importorskip("torch", reason="needs the torch extra")
from PIL import Image
from skimage import data

import vaecodec
from vaecodec.cli.main import main
from vaecodec.model import precision as precision_module
from vaecodec.model.grow import widen
from vaecodec.model.hyperprior import HyperpriorModel, ModelConfig
from vaecodec.model.precision import native_bf16
from vaecodec.model.weights import load_weights, save_weights
from vaecodec.train.data import CropSampler, DeviceCropSampler, split_images
from vaecodec.train.loop import TrainSettings, learning_rate, rate_distortion_loss, sample_levels

from conftest import not_installed

TINY = ["--channels", "8", "--latent-channels", "12", "--batch", "2", "--crop", "64", "--threads", "1"]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    source = data.astronaut()
    for i in range(16):  # img020..img024 hash into the validation split
        Image.fromarray(source[i * 10 : i * 10 + 96, i * 12 : i * 12 + 112]).save(folder / f"img{i + 14:03d}.png")
    return folder


def test_split_is_stable_and_disjoint(photo_folder: Path) -> None:
    train, val = split_images(photo_folder)
    assert val and train and not set(train) & set(val)
    assert (train, val) == split_images(photo_folder)


def test_train_resume_and_export(photo_folder: Path, tmp_path: Path, capsys) -> None:
    out, weights = tmp_path / "run", tmp_path / "tiny.pt"
    assert main(["train", str(photo_folder), "--out", str(out), "--steps", "3", "--eval-every", "3", "--eval-images", "1", *TINY]) == 0
    assert (out / "checkpoint.pt").exists()
    with open(out / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(float(row["eval_bpp"]) > 0 for row in rows)
    assert main(["train", str(photo_folder), "--out", str(out), "--steps", "5", "--resume", "--eval-every", "0",
                 "--export", str(weights), *TINY]) == 0
    assert "resumed from" in capsys.readouterr().out
    trained = load_weights(weights)
    assert trained.metadata["steps"] == 5
    codec = vaecodec.Codec(weights)
    image = np.asarray(Image.open(next(photo_folder.iterdir())))
    assert codec.decompress(codec.compress(image)).size == (image.shape[1], image.shape[0])
    assert main(["train", str(photo_folder), "--evaluate", "--init-weights", str(weights)]) == 0
    row = capsys.readouterr().out.strip().split(" | ")
    assert row[0] == f"`{codec.weights_id.hex()}`" and row[1] == "5" and len(row) == 4 + 5


def test_a_timed_run_stops_on_time_and_carries_the_step_count(photo_folder: Path, tmp_path: Path) -> None:
    first, timed = tmp_path / "first.pt", tmp_path / "timed.pt"
    assert main(["train", str(photo_folder), "--out", str(tmp_path / "a"), "--steps", "2", "--eval-every", "0",
                 "--export", str(first), *TINY]) == 0
    assert main(["train", str(photo_folder), "--out", str(tmp_path / "b"), "--init-weights", str(first),
                 "--minutes", "0.05", "--eval-every", "0", "--export", str(timed), *TINY]) == 0
    metadata = load_weights(timed).metadata
    assert metadata["steps"] > 2 and metadata["hours"] * 60 < 0.05 + 0.5


def test_a_run_can_retarget_the_rate_levels(photo_folder: Path, tmp_path: Path, capsys) -> None:
    first, retargeted = tmp_path / "first.pt", tmp_path / "retargeted.pt"
    common = ["--eval-every", "0", *TINY]
    assert main(["train", str(photo_folder), "--out", str(tmp_path / "a"), "--steps", "1", "--export", str(first), *common]) == 0
    assert main(["train", str(photo_folder), "--out", str(tmp_path / "b"), "--init-weights", str(first), "--steps", "2",
                 "--lambdas", "0.002,0.01,0.05,0.25", "--lowest-level", "-1.25", "--export", str(retargeted), *common]) == 0
    model = load_weights(retargeted).model
    assert model.config.lambdas == (0.002, 0.01, 0.05, 0.25) and model.config.lowest_level_hundredths == -125
    assert model.log_gain.shape[0] == 4
    codec = vaecodec.Codec(retargeted)
    image = np.asarray(Image.open(next(photo_folder.iterdir())))
    assert len(codec.compress(image, quality=0)) < len(codec.compress(image, quality=100))
    capsys.readouterr()
    for bad in (["--lambdas", "0.1,0.05"], ["--lambdas", "0.1,x"], ["--lowest-level", "7"], ["--lambdas", "0.1,0.2", "--resume"],
                ["--level-tilt", "1.5"], ["--level-tilt", "-0.1"]):
        assert main(["train", str(photo_folder), "--out", str(tmp_path / "b"), "--steps", "3", *bad, *common]) == 1
        err = capsys.readouterr().err
        assert err.startswith("vaecodec: error: ") and err.count("\n") == 1, (bad, err)


@pytest.mark.parametrize("tilt", [0.0, 0.6, 1.0])
def test_level_sampling_stays_in_range_and_tilts_toward_the_top(tilt: float) -> None:
    torch.manual_seed(0)
    levels = sample_levels(100_000, -1.5, 7.0, tilt)
    assert levels.min() >= -1.5 and levels.max() <= 7.0
    counts = torch.histc(levels, bins=4, min=-1.5, max=7.0) / levels.numel()
    # a density rising linearly from 1 - tilt to 1 + tilt puts (1 - tilt * 3/4) / 4 in the lowest quarter
    assert counts[0].item() == pytest.approx((1 - tilt * 0.75) / 4, abs=0.01)
    assert counts[3].item() == pytest.approx((1 + tilt * 0.75) / 4, abs=0.01)


def test_learning_rate_is_constant_then_decays_to_the_final_rate() -> None:
    settings = TrainSettings(data=Path("."), out=Path("."), lr=1e-3, lr_final=1e-5, decay_start=0.5)
    rates = [learning_rate(settings, p) for p in np.linspace(0, 1, 11)]
    assert rates[:6] == [1e-3] * 6 and rates[-1] == pytest.approx(1e-5)
    assert all(a > b for a, b in zip(rates[5:], rates[6:]))


def test_training_step_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = HyperpriorModel(ModelConfig(8, 12))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.from_numpy(data.astronaut()[100:164, 200:264].copy()).permute(2, 0, 1)[None].float() / 255
    level = torch.tensor([3.0])

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same quantization noise each time
        return rate_distortion_loss(model(x, level), x, model.lambdas_at(level))["loss"]

    before = loss().item()
    for _ in range(20):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < before


def test_weights_round_trip_without_pickle(tmp_path: Path) -> None:
    model = HyperpriorModel(ModelConfig(8, 12)).eval()
    path = tmp_path / "w.pt"
    weights_id = save_weights(model, path, {"steps": 7})
    loaded = load_weights(path)
    assert loaded.weights_id == weights_id and loaded.metadata == {"steps": 7}
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value.half().float())
    torch.save({"format": "vaecodec-weights-1", "evil": object()}, tmp_path / "pickled.pt")
    with pytest.raises(vaecodec.VaecodecError, match="not a vaecodec weights file"):
        load_weights(tmp_path / "pickled.pt")


def test_shipped_weights_are_found_and_trained() -> None:
    trained = load_weights()
    assert trained.metadata.get("steps", 0) >= 1000


def test_train_refuses_a_missing_folder(tmp_path: Path, capsys) -> None:
    assert main(["train", str(tmp_path / "nothing"), "--out", str(tmp_path / "run")]) == 1
    assert "no such directory" in capsys.readouterr().err


def test_a_run_widens_its_init_weights_keeping_what_they_compute(photo_folder: Path, tmp_path: Path) -> None:
    first, grown = tmp_path / "first.pt", tmp_path / "grown.pt"
    common = ["--eval-every", "0", *TINY]
    assert main(["train", str(photo_folder), "--out", str(tmp_path / "a"), "--steps", "2", "--export", str(first), *common]) == 0
    model = load_weights(first).model
    wider = widen(model, 12, 20)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y, y_wide = model.g_a(x), wider.g_a(x)
        assert torch.equal(y_wide[:, :12], y) and y_wide[:, 12:].abs().sum() > 0  # new channels carry new features
        z = model.h_a(y)
        assert torch.allclose(wider.h_a(y_wide), z, atol=1e-6)
        (means, scales), (wide_means, wide_scales) = model.hyper_parameters(z), wider.hyper_parameters(z)
        assert torch.allclose(wide_means[:, :12], means, atol=1e-6) and torch.allclose(wide_scales[:, :12], scales, atol=1e-6)
        assert torch.allclose(wider.g_s(y_wide), model.g_s(y), atol=1e-5)  # the synthesis ignores the new channels
    assert main(["train", str(photo_folder), "--out", str(tmp_path / "b"), "--init-weights", str(first), "--steps", "3",
                 "--channels", "12", "--latent-channels", "20", "--export", str(grown), "--eval-every", "0",
                 "--batch", "2", "--crop", "64", "--threads", "1"]) == 0
    config = load_weights(grown).model.config
    assert (config.channels, config.latent_channels, config.hyper) == (12, 20, 8)
    with pytest.raises(vaecodec.VaecodecError, match="grows only"):
        widen(model, 4, 12)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_runs_at_each_precision_and_logs_its_speed(photo_folder: Path, tmp_path: Path, precision: str) -> None:
    if precision == "bf16" and not native_bf16(torch.device("cpu")):
        pytest.skip("this CPU has no native bf16")
    out = tmp_path / precision
    assert main(["train", str(photo_folder), "--out", str(out), "--steps", "100", "--eval-every", "0",
                 "--precision", precision, *TINY]) == 0
    with open(out / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(float(row["crops_per_s"]) > 0 for row in rows)


def test_bf16_training_without_native_bf16_is_refused(photo_folder: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(precision_module, "native_bf16", lambda device: False)
    assert main(["train", str(photo_folder), "--out", str(tmp_path / "run"), "--steps", "1", "--precision", "bf16", *TINY]) == 1
    assert capsys.readouterr().err.startswith("vaecodec: error: bf16 is not native")


def test_a_context_learns_at_its_own_rate(photo_folder: Path, tmp_path: Path, capsys) -> None:
    first, grown = tmp_path / "first.pt", tmp_path / "context.pt"
    assert main(["train", str(photo_folder), "--out", str(tmp_path / "a"), "--steps", "2", "--export", str(first),
                 "--eval-every", "0", *TINY]) == 0
    # Adam's first step moves every parameter with a gradient by about its learning rate.
    assert main(["train", str(photo_folder), "--out", str(tmp_path / "b"), "--init-weights", str(first), "--steps", "3",
                 "--context-groups", "4,8", "--context-lr-factor", "10", "--lr", "1e-4", "--decay-start", "1",
                 "--export", str(grown), "--eval-every", "0", *TINY]) == 0
    before, after = load_weights(first).model.state_dict(), load_weights(grown).model.state_dict()
    context_moves = max(float(v.abs().max()) for k, v in after.items()
                        if k.startswith("context.") and k.endswith(".4.weight"))  # the zero-initialised last layers
    transform_moves = max(float((after[k] - before[k]).abs().max()) for k in before)
    assert 5e-4 < context_moves <= 1.1e-3 and 0 < transform_moves < context_moves / 4
    assert main(["train", str(photo_folder), "--out", str(tmp_path / "c"), "--context-lr-factor", "0", *TINY]) == 1
    assert "--context-lr-factor must be above 0" in capsys.readouterr().err


def _mixed_photos(folder: Path) -> list[Path]:
    """Tiny PNGs and JPEGs of several sizes (the JPEGs get the sampler's random downscale)."""
    folder.mkdir()
    source, paths = data.astronaut(), []
    for i, (h, w, suffix) in enumerate([(96, 112, "png"), (80, 80, "jpg"), (120, 90, "png"), (100, 140, "jpg"), (70, 75, "png")]):
        paths.append(folder / f"p{i}.{suffix}")
        Image.fromarray(source[i * 20 : i * 20 + h, i * 30 : i * 30 + w]).save(paths[-1])
    return paths


def test_the_device_sampler_cuts_the_same_crops_as_the_host_sampler(tmp_path: Path) -> None:
    paths = _mixed_photos(tmp_path / "photos")
    host = CropSampler(paths, 64, seed=5, clean_weight=1.5)
    on_device = DeviceCropSampler(paths, 64, seed=5, clean_weight=1.5, device="cpu", memory_format=torch.channels_last)
    assert np.array_equal(host.weights, on_device.weights) and len(on_device.images) == len(paths)
    assert all(t.dtype == torch.uint8 and t.shape == im.shape and np.array_equal(t.numpy(), im)
               for t, im in zip(on_device.images, host.images))  # the same photos, JPEG downscale included
    for size in (16, 16, 7):  # the uint8 batch is reused, then reallocated for another size
        expected, got = host.batch(size), on_device.batch(size)
        assert got.shape == (size, 3, 64, 64) and got.dtype == torch.float32 and got.device.type == "cpu"
        assert got.is_contiguous(memory_format=torch.channels_last)
        assert 0 <= got.min() and got.max() <= 1
        assert torch.equal(got, expected)
    plain = DeviceCropSampler(paths, 64, seed=5, clean_weight=1.5)
    assert plain.batch(4).is_contiguous()


def test_the_device_sampler_draws_photos_by_weighted_area(tmp_path: Path) -> None:
    paths = _mixed_photos(tmp_path / "photos")
    sampler = DeviceCropSampler(paths, 64, seed=1, clean_weight=3.0)
    areas = np.array([im.shape[0] * im.shape[1] * (1.0 if p.suffix == ".jpg" else 3.0)
                      for p, im in zip(paths, sampler.images)])
    assert np.allclose(sampler.weights, areas / areas.sum())
    counts = np.bincount([k for k, _, _, _ in sampler.draws(20_000)], minlength=len(paths)) / 20_000
    assert np.allclose(counts, sampler.weights, atol=0.015)
    mirrored = [m for _, _, _, m in sampler.draws(4000)]
    assert 0.45 < np.mean(mirrored) < 0.55


@pytest.mark.parametrize("precision", ["fp32", "auto"])  # auto: bf16 on channels-last where the CPU has it
def test_training_with_the_crops_cut_on_the_device(photo_folder: Path, tmp_path: Path, capsys, precision: str) -> None:
    out, weights = tmp_path / "run", tmp_path / "tiny.pt"
    assert main(["train", str(photo_folder), "--out", str(out), "--steps", "2", "--eval-every", "0", "--precision", precision,
                 "--crops-on-device", "--export", str(weights), *TINY]) == 0
    assert "crops cut on the device" in capsys.readouterr().out
    assert (out / "checkpoint.pt").exists() and load_weights(weights).metadata["steps"] == 2


def test_an_export_without_onnx_keeps_the_weights_and_says_how_to_make_the_bundle(tmp_path: Path) -> None:
    """A machine without the onnx package (a GPU lease) still exports the torch weights; the bundle
    is left for later, with a warning naming the command."""
    script = not_installed("onnx") + textwrap.dedent("""
        import warnings
        from vaecodec.model.hyperprior import HyperpriorModel, ModelConfig
        from vaecodec.model.weights import load_weights, save_weights
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            save_weights(HyperpriorModel(ModelConfig(8, 12)), sys.argv[1])
        assert len(caught) == 1 and "python -m vaecodec.model.weights" in str(caught[0].message), caught
        load_weights(sys.argv[1])
    """)
    weights = tmp_path / "w.pt"
    result = subprocess.run([sys.executable, "-c", script, str(weights)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert weights.exists() and not weights.with_suffix(".npz").exists()
