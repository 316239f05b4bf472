"""Integer networks: the building blocks of everything that selects coding probabilities.

A learned codec breaks when encoder and decoder compute its entropy parameters with a rounding
difference (another CPU, a GPU, another thread count). So coding never uses floating-point
networks for them: the networks that map decoded integers to means and scale-table indexes run
here with integers only (Ballé, Johnston, Minnen, "Integer networks for data compression", 2019).

- Weights and biases are quantized from the stored half-precision values with only exact
  operations (scaling by powers of two and rounding): weights to WEIGHT_BITS fractional bits,
  biases to WEIGHT_BITS + ACT_BITS.
- Activations carry ACT_BITS fractional bits. Each convolution sums integer products in float64,
  where all integers below 2**53 are exact, so the result is exact in any summation order; it is
  rounded back to ACT_BITS (round half up) and clamped to +-ACT_LIMIT, which bounds every sum.
- LeakyReLU multiplies negative values by LEAKY_NUMERATOR / 2**12 and rounds down.
- A scale output s becomes a fixed-point log-scale through a table frozen in the weights file
  (``build_log_scale_table``: round(256 * ln(softplus(s))) on a 1/64 grid of s in [LUT_MIN, LUT_MAX)).

The float networks (training) and these differ by about 2**-10 per value, far below anything that
matters for the rate. Which networks use them, and how, is the latent coder's business
(``vaecodec.latent``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vaecodec.entropy.tables import LOG_UNIT
from vaecodec.errors import VaecodecError

ACT_BITS = 10
WEIGHT_BITS = 14
ACT_LIMIT = 1 << 22
LEAKY_NUMERATOR = 41  # 41 / 4096 = 0.0100 (LeakyReLU's slope)
LUT_BITS = 6  # the log-scale table samples s every 1/64
LUT_MIN, LUT_MAX = -16, 256


def build_log_scale_table() -> torch.Tensor:
    """round(LOG_UNIT * ln(softplus(s))) on the grid s = LUT_MIN + j / 2**LUT_BITS (built at export)."""
    s = LUT_MIN + torch.arange((LUT_MAX - LUT_MIN) << LUT_BITS, dtype=torch.float64) / (1 << LUT_BITS)
    return torch.round(LOG_UNIT * torch.log(F.softplus(s))).to(torch.int32)


def log_scales(raw_scales: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Fixed-point log-scales (int32, units 1/LOG_UNIT) of fixed-point pre-softplus scale outputs."""
    grid = torch.div(raw_scales, 1 << (ACT_BITS - LUT_BITS), rounding_mode="floor")
    grid = grid.clamp_(LUT_MIN << LUT_BITS, (LUT_MAX << LUT_BITS) - 1).sub_(LUT_MIN << LUT_BITS).to(torch.int64)
    return table[grid]


def to_fixed(x: torch.Tensor) -> torch.Tensor:
    """Integers (any integer dtype) as float64 activations with ACT_BITS fractional bits."""
    return x.double().cpu() * (1 << ACT_BITS)


def _quantize(value: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.round(value.double() * (1 << bits))


def _rescale(acc: torch.Tensor) -> torch.Tensor:
    """From WEIGHT_BITS + ACT_BITS fractional bits back to ACT_BITS, rounding half up, clamped."""
    return torch.floor((acc + (1 << (WEIGHT_BITS - 1))) / (1 << WEIGHT_BITS)).clamp(-ACT_LIMIT, ACT_LIMIT)


class IntegerConv:
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


def integer_leaky_relu(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x < 0, torch.floor(x * LEAKY_NUMERATOR / 4096), x)


class IntegerSequential:
    """An ``nn.Sequential`` of convolutions and LeakyReLUs evaluated exactly (``layers``: the steps)."""

    def __init__(self, network: nn.Sequential) -> None:
        if any(not isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.LeakyReLU)) for m in network):
            raise VaecodecError("a network has a layer without an integer version")
        self.layers = [IntegerConv(m) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) else integer_leaky_relu
                       for m in network]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x
