"""The hyper-synthesis in exact integer arithmetic: what the coder's tables are chosen from.

A learned codec breaks when encoder and decoder compute its entropy parameters with a rounding
difference (another CPU, a GPU, another thread count). So coding never uses the floating-point
hyper-synthesis: from the integer hyper-latent, this module computes every latent element's
mean and scale-table index with integers only.

- Weights and biases are quantized from the stored half-precision values with only exact
  operations (scaling by powers of two and rounding): weights to WEIGHT_BITS fractional bits,
  biases to WEIGHT_BITS + ACT_BITS.
- Activations carry ACT_BITS fractional bits. Each convolution sums integer products in float64,
  where all integers below 2**53 are exact, so the result is exact in any summation order; it is
  rounded back to ACT_BITS (round half up) and clamped to +-ACT_LIMIT, which bounds every sum.
- LeakyReLU multiplies negative values by LEAKY_NUMERATOR / 2**12 and rounds down.
- The scale output s becomes a fixed-point log-scale through a table frozen in the weights file
  (``log_scale_table``: round(256 * ln(softplus(s))) on a 1/64 grid of s in [LUT_MIN, LUT_MAX)),
  plus the quality's integer log-gain; the scale-table index follows by integer division
  (``vaecodec.entropy.tables.scale_index``).

The float hyper-synthesis (training) and this one differ by about 2**-10 per value, far below
anything that matters for the rate.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from vaecodec.entropy.tables import LOG_UNIT, scale_index
from vaecodec.errors import VaecodecError
from vaecodec.model.tiling import map_tiles

ACT_BITS = 10
WEIGHT_BITS = 14
ACT_LIMIT = 1 << 22
LEAKY_NUMERATOR = 41  # 41 / 4096 = 0.0100 (LeakyReLU's slope)
LUT_BITS = 6  # the log-scale table samples s every 1/64
LUT_MIN, LUT_MAX = -16, 256
QUALITY_UNITS = 10000  # the header's quality x 100 at its maximum
TILE, TILE_MARGIN = 32, 3  # hyper-latent pixels per tile (bounds float64 im2col memory), overlap


def build_log_scale_table() -> torch.Tensor:
    """round(LOG_UNIT * ln(softplus(s))) on the grid s = LUT_MIN + j / 2**LUT_BITS (built at export)."""
    s = LUT_MIN + torch.arange((LUT_MAX - LUT_MIN) << LUT_BITS, dtype=torch.float64) / (1 << LUT_BITS)
    return torch.round(LOG_UNIT * torch.log(F.softplus(s))).to(torch.int32)


def _quantize(value: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.round(value.double() * (1 << bits))


def _rescale(acc: torch.Tensor) -> torch.Tensor:
    """From WEIGHT_BITS + ACT_BITS fractional bits back to ACT_BITS, rounding half up, clamped."""
    return torch.floor((acc + (1 << (WEIGHT_BITS - 1))) / (1 << WEIGHT_BITS)).clamp(-ACT_LIMIT, ACT_LIMIT)


class _IntegerConv:
    """One (transposed) convolution with quantized weights, evaluated exactly in float64."""

    def __init__(self, layer: nn.Conv2d | nn.ConvTranspose2d) -> None:
        self.transposed = isinstance(layer, nn.ConvTranspose2d)
        self.weight = _quantize(layer.weight.detach(), WEIGHT_BITS)
        self.bias = _quantize(layer.bias.detach(), WEIGHT_BITS + ACT_BITS)
        self.stride, self.padding = layer.stride, layer.padding
        self.output_padding = getattr(layer, "output_padding", (0, 0))
        output_axis = 1 if self.transposed else 0
        # The largest possible sum: every input at the activation limit with its weight's sign.
        worst = self.weight.abs().sum(dim=[d for d in range(4) if d != output_axis]).max().item()
        if worst * ACT_LIMIT + self.bias.abs().max().item() >= 2**53:
            raise VaecodecError("weights too large for exact integer entropy parameters")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            acc = F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding)
        else:
            acc = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        return _rescale(acc)


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x < 0, torch.floor(x * LEAKY_NUMERATOR / 4096), x)


class IntegerEntropyParameters:
    """Means and scale-table indexes of the latent from the integer hyper-latent, exactly.

    Built from a model's hyper-synthesis (``h_s``: convolutions and LeakyReLUs), its per-level
    log-gains and the frozen log-scale table; runs on the CPU.
    """

    def __init__(self, h_s: nn.Sequential, log_gain: torch.Tensor, log_scale_table: torch.Tensor) -> None:
        self.layers = [_IntegerConv(m) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) else _leaky for m in h_s]
        if any(not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.LeakyReLU)) for m in h_s):
            raise VaecodecError("the hyper-synthesis has a layer without an integer version")
        # Per-level, per-channel log-gains in units of 1/LOG_UNIT (the stored values scale exactly).
        self.log_gain = torch.round(log_gain.detach().double().cpu() * LOG_UNIT).to(torch.int64)
        self.log_scale_table = log_scale_table.to(torch.int32).cpu()

    def _network(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def level_log_gain(self, level_units: int) -> torch.Tensor:
        """(M,) integer log-gains at a rate level (x QUALITY_UNITS), linear between the levels and
        extrapolating the first two below level 0."""
        levels = len(self.log_gain)
        low = min(max(level_units // QUALITY_UNITS, 0), levels - 2)
        fraction = level_units - low * QUALITY_UNITS
        step = self.log_gain[low + 1] - self.log_gain[low]
        return self.log_gain[low] + torch.div(step * fraction, QUALITY_UNITS, rounding_mode="floor")

    @torch.no_grad()
    def __call__(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(float32 means, int32 fixed-point log-scales), both before gains, for an integer z (1, N, h, w)."""
        x = map_tiles(self._network, z.double().cpu() * (1 << ACT_BITS), Fraction(4), TILE, TILE_MARGIN)
        means, raw_scales = x.chunk(2, dim=1)
        grid = torch.div(raw_scales, 1 << (ACT_BITS - LUT_BITS), rounding_mode="floor")
        grid = grid.clamp_(LUT_MIN << LUT_BITS, (LUT_MAX << LUT_BITS) - 1).sub_(LUT_MIN << LUT_BITS).to(torch.int64)
        log_scales = self.log_scale_table[grid]
        del grid
        return means.div(1 << ACT_BITS).float(), log_scales

    def indexes(self, log_scales: torch.Tensor, level_units: int) -> torch.Tensor:
        """Scale-table indexes of the gained scales at a rate level (x QUALITY_UNITS)."""
        return scale_index(log_scales + self.level_log_gain(level_units)[None, :, None, None])


def quality_units(quality: float) -> int:
    """The header's integer quality (x 100), which is what the entropy parameters depend on."""
    return round(quality * 100)


def level_units(quality: float, levels: int, lowest_level_hundredths: int) -> int:
    """The rate level (x QUALITY_UNITS) of a quality, from the header's integer: qualities 0..100
    span the lowest level (hundredths, from the weights) to the highest, ``levels - 1``."""
    lowest = lowest_level_hundredths * (QUALITY_UNITS // 100)
    return lowest + quality_units(quality) * ((levels - 1) * QUALITY_UNITS - lowest) // QUALITY_UNITS
