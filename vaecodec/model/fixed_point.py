"""Integer networks: the building blocks of everything that selects coding probabilities.

A learned codec breaks when encoder and decoder compute its entropy parameters with a rounding
difference (another CPU, a GPU, another thread count). So coding never uses floating-point
networks for them: the networks that map decoded integers to means and scale-table indexes run
here with integers only (Ballé, Johnston, Minnen, "Integer networks for data compression", 2019).

- Weights and biases are quantized from the stored half-precision values with only exact
  operations (scaling by powers of two and rounding half to even): weights to WEIGHT_BITS
  fractional bits, biases to WEIGHT_BITS + ACT_BITS (``quantize``).
- Activations carry ACT_BITS fractional bits. Each convolution sums integer products in float64
  matrix products (numpy's BLAS), where all integers below 2**53 are exact, so the result is exact
  in any summation order, on any machine and thread count; it is rounded back to ACT_BITS (round
  half up) and clamped to +-ACT_LIMIT, which bounds every sum.
- LeakyReLU multiplies negative values by LEAKY_NUMERATOR / 2**12 and rounds down.
- A scale output s becomes a fixed-point log-scale through a table frozen in the weights file
  (``build_log_scale_table``: round(256 * ln(softplus(s))) on a 1/64 grid of s in [LUT_MIN, LUT_MAX)).

The layers are built from plain arrays (integer weights, stride, padding), numpy only, so the
coding runtime needs no torch, and tests compare them with torch's float64 convolutions bit for
bit. The float networks (training) and these differ by about 2**-10 per value, far below anything
that matters for the rate. Which networks use them, and how, is the latent coder's business
(``vaecodec.latent``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from threadpoolctl import ThreadpoolController

from vaecodec.entropy.tables import LOG_UNIT
from vaecodec.errors import VaecodecError

ACT_BITS = 10
WEIGHT_BITS = 14
ACT_LIMIT = 1 << 22
LEAKY_NUMERATOR = 41  # 41 / 4096 = 0.0100 (LeakyReLU's slope)
LUT_BITS = 6  # the log-scale table samples s every 1/64
LUT_MIN, LUT_MAX = -16, 256


def build_log_scale_table() -> np.ndarray:
    """round(LOG_UNIT * ln(softplus(s))) on the grid s = LUT_MIN + j / 2**LUT_BITS (built at export)."""
    import torch  # export only: the table is frozen into the weights with torch's softplus
    import torch.nn.functional as F

    s = LUT_MIN + torch.arange((LUT_MAX - LUT_MIN) << LUT_BITS, dtype=torch.float64) / (1 << LUT_BITS)
    return torch.round(LOG_UNIT * torch.log(F.softplus(s))).to(torch.int32).numpy()


def log_scales(raw_scales: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Fixed-point log-scales (int32, units 1/LOG_UNIT) of fixed-point pre-softplus scale outputs."""
    grid = np.floor(raw_scales / (1 << (ACT_BITS - LUT_BITS)))
    grid = np.clip(grid, LUT_MIN << LUT_BITS, (LUT_MAX << LUT_BITS) - 1) - (LUT_MIN << LUT_BITS)
    return table[grid.astype(np.int64)]


def to_fixed(x: np.ndarray) -> np.ndarray:
    """Integers (any integer dtype) as float64 activations with ACT_BITS fractional bits."""
    return np.asarray(x, dtype=np.float64) * (1 << ACT_BITS)


def quantize(weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A layer's stored (half-precision) weight and bias as the integers its integer version uses."""
    return (np.round(np.asarray(weight, dtype=np.float64) * (1 << WEIGHT_BITS)),
            np.round(np.asarray(bias, dtype=np.float64) * (1 << (WEIGHT_BITS + ACT_BITS))))


def _rescale(acc: np.ndarray) -> np.ndarray:
    """From WEIGHT_BITS + ACT_BITS fractional bits back to ACT_BITS, rounding half up, clamped."""
    return np.clip(np.floor((acc + (1 << (WEIGHT_BITS - 1))) / (1 << WEIGHT_BITS)), -ACT_LIMIT, ACT_LIMIT)


@dataclass(frozen=True)
class ConvSpec:
    """The shape of one (transposed) convolution: square kernel, one stride and padding for both axes."""

    stride: int
    padding: int
    output_padding: int = 0
    transposed: bool = False


class IntegerConv:
    """One (transposed) convolution with integer weights, evaluated exactly as float64 matrix
    products, one per kernel tap. ``weight`` is laid out as torch lays it out: (out, in, k, k) for a
    convolution, (in, out, k, k) for a transposed one; ``bias`` (out,)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, spec: ConvSpec) -> None:
        self.spec = spec
        weight = np.asarray(weight, dtype=np.float64)
        # Per tap, the (out, in) matrix that multiplies the input's channels.
        taps = weight.transpose(2, 3, 0, 1) if not spec.transposed else weight.transpose(2, 3, 1, 0)
        self.taps = np.ascontiguousarray(taps)
        self.bias = np.asarray(bias, dtype=np.float64)
        # The largest possible sum: every input at the activation limit with its weight's sign.
        worst = np.abs(self.taps).sum(axis=(0, 1, 3)).max()
        if worst * ACT_LIMIT + np.abs(self.bias).max() >= 2**53:
            raise VaecodecError("weights too large for exact integer entropy parameters")

    def __call__(self, x: np.ndarray, workers: int = 1) -> np.ndarray:
        """(1, in, H, W) float64 integers -> (1, out, H', W'), rescaled to ACT_BITS; the output
        channels shared out between ``workers`` threads (each output's sums are the same: exact)."""
        run = self._transposed if self.spec.transposed else self._convolution
        outputs = self.taps.shape[2]
        count = min(workers, max(1, outputs // 32))
        parts = [slice(k * outputs // count, (k + 1) * outputs // count) for k in range(count)]
        if count == 1:
            return _rescale(run(x[0], parts[0]))[None]
        with ThreadPoolExecutor(count) as pool:  # numpy's matrix products run without the GIL
            return _rescale(np.concatenate(list(pool.map(lambda part: run(x[0], part), parts))))[None]

    def _convolution(self, x: np.ndarray, outputs: slice) -> np.ndarray:
        k, s, p = self.taps.shape[0], self.spec.stride, self.spec.padding
        padded = np.pad(x, ((0, 0), (p, p), (p, p)))
        rows, cols = (padded.shape[1] - k) // s + 1, (padded.shape[2] - k) // s + 1
        taps = self.taps[:, :, outputs]
        acc = np.empty((taps.shape[2], rows * cols))
        acc[:] = self.bias[outputs, None]
        for kh in range(k):
            for kw in range(k):
                window = padded[:, kh : kh + s * (rows - 1) + 1 : s, kw : kw + s * (cols - 1) + 1 : s]
                acc += taps[kh, kw] @ window.reshape(len(x), -1)
        return acc.reshape(-1, rows, cols)

    def _transposed(self, x: np.ndarray, outputs: slice) -> np.ndarray:
        k, s, p, extra = self.taps.shape[0], self.spec.stride, self.spec.padding, self.spec.output_padding
        _, height, width = x.shape
        rows, cols = (height - 1) * s - 2 * p + k + extra, (width - 1) * s - 2 * p + k + extra
        taps = self.taps[:, :, outputs]
        out = np.zeros((taps.shape[2], max(s * (height - 1) + k, p + rows), max(s * (width - 1) + k, p + cols)))
        flat = x.reshape(len(x), -1)
        for kh in range(k):
            for kw in range(k):
                spread = (taps[kh, kw] @ flat).reshape(-1, height, width)
                out[:, kh : kh + s * (height - 1) + 1 : s, kw : kw + s * (width - 1) + 1 : s] += spread
        return out[:, p : p + rows, p : p + cols] + self.bias[outputs, None, None]


def integer_leaky_relu(x: np.ndarray) -> np.ndarray:
    return np.where(x < 0, np.floor(x * LEAKY_NUMERATOR / 4096), x)


# A layer of an integer network as plain data: ("conv", weight, bias, spec), the weight and bias
# as stored (half precision), or ("leaky_relu",).
LayerData = tuple


@lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


class IntegerSequential:
    """A chain of integer convolutions and LeakyReLUs evaluated exactly, built from plain data
    (``LayerData``: what a weights bundle stores), quantized here.

    Its matrix products run on one BLAS thread each (the sums are exact either way), the caller's
    ``workers`` threads sharing out the output channels: kodim23's hyper-synthesis took 31-34 ms on
    2 such threads, 56-59 on one. Two BLAS threads instead made kodim23's
    hyper-synthesis alone faster on an idle machine (41 ms against 56) but the whole encode slower
    (157-161 ms against 137-139 on ONNX Runtime: OpenBLAS's threads spin on after their work, while
    the next strips need the cores), and beside a busy core the hyper-synthesis itself slower (73 ms
    against 49)."""

    def __init__(self, layers: list[LayerData]) -> None:
        self.layers: list[Callable[[np.ndarray], np.ndarray]] = []
        for layer in layers:
            if layer[0] == "conv":
                _, weight, bias, spec = layer
                self.layers.append(IntegerConv(*quantize(weight, bias), spec))
            elif layer[0] == "leaky_relu":
                self.layers.append(integer_leaky_relu)
            else:
                raise VaecodecError(f"a network has a layer ({layer[0]}) without an integer version")

    def __call__(self, x: np.ndarray, workers: int = 1) -> np.ndarray:
        """The network on ``x``; ``workers`` threads share out each convolution's output channels
        (threads of their own: each takes a heap of glibc's, so large images keep to one)."""
        with _blas().limit(limits=1, user_api="blas"):
            for layer in self.layers:
                x = layer(x, workers) if isinstance(layer, IntegerConv) else layer(x)
        return x
