"""Rate levels: how qualities map onto the model's levels, and the extrapolated range below level 0."""

from __future__ import annotations

from pathlib import Path

import pytest
torch = pytest.importorskip("torch", reason="needs the torch extra")
from PIL import Image

import vaecodec
from vaecodec.format.container import parse
from vaecodec.model.rate_levels import LEVEL_UNIT, level_units, quality_units
from vaecodec.model.hyperprior import HyperpriorModel, ModelConfig
from vaecodec.model.weights import load_weights, save_weights

from conftest import psnr


def test_qualities_span_the_level_range_exactly_and_in_order() -> None:
    assert level_units(quality_units(0), 8, -150) == -1.5 * LEVEL_UNIT
    assert level_units(quality_units(100), 8, -150) == level_units(quality_units(100), 8, 0) == 7 * LEVEL_UNIT
    assert level_units(quality_units(50), 8, 0) == 3.5 * LEVEL_UNIT
    units = [level_units(quality_units(q / 4), 8, -150) for q in range(401)]
    assert all(a < b for a, b in zip(units, units[1:]))


def test_gains_and_lambdas_extrapolate_log_linearly_below_level_zero() -> None:
    torch.manual_seed(0)
    model = HyperpriorModel(ModelConfig(8, 12, lowest_level_hundredths=-150))
    with torch.no_grad():
        model.log_gain.normal_()

    def log_gain(level: float) -> torch.Tensor:
        return model.gains(torch.tensor([level]))[0].log().flatten()

    assert torch.allclose(log_gain(-1.0), 2 * log_gain(0.0) - log_gain(1.0), atol=1e-5)
    assert torch.allclose(log_gain(-3.0), log_gain(-1.5))  # nothing below the lowest level
    low, zero, one = model.lambdas_at(torch.tensor([-1.0, 0.0, 1.0])).tolist()
    assert low == pytest.approx(zero**2 / one)


def test_new_rate_levels_start_where_the_old_gain_curve_had_their_lambdas() -> None:
    torch.manual_seed(0)
    model = HyperpriorModel(ModelConfig(8, 12, lambdas=(0.01, 0.04, 0.16)))
    with torch.no_grad():
        model.log_gain.normal_()
        model.log_inverse_gain.normal_()
    # Same lambdas: the same gains. 0.02 lies halfway (in log) between levels 0 and 1; 0.64 is one
    # level step past the top; a fourth level adds a row.
    moved = model.with_rate_levels((0.01, 0.02, 0.16, 0.64), -50)
    assert moved.config.lambdas == (0.01, 0.02, 0.16, 0.64) and moved.lowest_level == -0.5
    for name in ("log_gain", "log_inverse_gain"):
        old, new = getattr(model, name), getattr(moved, name)
        assert new.shape == (4, 12)
        assert torch.equal(new[0], old[0]) and torch.equal(new[2], old[2])
        assert torch.allclose(new[1], (old[0] + old[1]) / 2, atol=1e-6)
        assert torch.allclose(new[3], 2 * old[2] - old[1], atol=1e-5)
    assert torch.equal(moved.g_s[0].weight, model.g_s[0].weight)
    assert moved.config.channels == model.config.channels


def _shipped_networks_with_lowest_level(folder: Path, hundredths: int) -> vaecodec.Codec:
    shipped = load_weights().model
    model = shipped.with_rate_levels(shipped.config.lambdas, hundredths)
    save_weights(model, folder / f"lowest{hundredths}.pt", {"steps": 0})
    return vaecodec.Codec(folder / f"lowest{hundredths}.pt")


def test_the_extended_range_codes_below_level_zero_and_decodes(tmp_path: Path, photo: Image.Image) -> None:
    extended = _shipped_networks_with_lowest_level(tmp_path, -150)
    at_zero = _shipped_networks_with_lowest_level(tmp_path, 0)
    below, level_zero = extended.compress(photo, quality=0), at_zero.compress(photo, quality=0)
    assert len(below) < len(level_zero)
    decoded = extended.decompress(below)
    assert decoded.size == photo.size
    assert psnr(at_zero.decompress(level_zero), photo) - 4 < psnr(decoded, photo) < psnr(at_zero.decompress(level_zero), photo)
    # At the same rate level the two code the same streams, whichever quality names that level.
    same, other = parse(extended.compress(photo, quality=100)), parse(at_zero.compress(photo, quality=100))
    assert (same.hyper_stream, same.latent_stream) == (other.hyper_stream, other.latent_stream)
