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
  half up) and clamped to +-ACT_LIMIT, which bounds every sum. Small kernels take Winograd's
  minimal filtering in integers, exact by the same bound, with fewer products (``IntegerConv``).
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
from itertools import zip_longest
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


@dataclass(frozen=True)
class ConvSpec:
    """The shape of one (transposed) convolution: square kernel, one stride and padding for both axes."""

    stride: int
    padding: int
    output_padding: int = 0
    transposed: bool = False


# Winograd's minimal filtering F(2, r) (Lavin and Gray, "Fast algorithms for convolutional neural
# networks", 2016) for filters of r = 1, 2, 3 taps, in integers: two outputs of a correlation from
# r + 1 inputs with r + 1 products. Each entry: the input transform B^T (its entries 0 and +-1),
# the filter transform G (scaled to integers by the last entry) and the output transform A^T.
_F2 = {
    1: (np.eye(2), np.array([[1.0], [1]]), np.eye(2), 1),
    2: (np.array([[1.0, -1, 0], [0, 1, 0], [0, -1, 1]]), np.array([[1.0, 0], [1, 1], [0, 1]]),
        np.array([[1.0, 1, 0], [0, 1, 1]]), 1),
    3: (np.array([[1.0, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]),
        np.array([[2.0, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]]), np.array([[1.0, 1, 1, 0], [0, 1, -1, -1]]), 2),
}
# Below this many products (tap by tap) a layer runs on one thread: kodim23's first hyper-synthesis
# layer (33 million) took 1.7 ms on one, 2.6 on two.
SHARED_MIN_PRODUCTS = 50_000_000
CHUNK_TILES = 512  # 2x2 output blocks per matrix product: bounds the transformed inputs' memory
OUTPUT_BLOCK = 64  # output channels per matrix product: the products stay in the caches


def _window(x: np.ndarray, top: int, height: int, left: int, width: int) -> np.ndarray:
    """x[:, top:top+height, left:left+width] of a (C, H, W) array, zeros where that lies outside it."""
    out = np.zeros((len(x), height, width))
    rows, cols = slice(max(top, 0), min(top + height, x.shape[1])), slice(max(left, 0), min(left + width, x.shape[2]))
    if rows.start < rows.stop and cols.start < cols.stop:
        out[:, rows.start - top : rows.stop - top, cols.start - left : cols.stop - left] = x[:, rows, cols]
    return out


def _combine(coefficients: np.ndarray, parts: list[np.ndarray], out: np.ndarray) -> np.ndarray:
    """The sum of coefficient * part over coefficients of 0 and +-1 (an input transform's), into ``out``."""
    (first, part), *rest = [(c, part) for c, part in zip(coefficients, parts) if c]
    np.multiply(part, first, out=out)
    for c, part in rest:
        (np.add if c > 0 else np.subtract)(out, part, out=out)
    return out


def _parts(count: int, parts: int) -> list[slice]:
    """``parts`` slices that share out range(count)."""
    return [slice(k * count // parts, (k + 1) * count // parts) for k in range(parts)]


class _Winograd:
    """One stride-1 correlation with a kernel of at most 3x3 taps, as Winograd's F(2x2, kh x kw): a
    2x2 block of outputs per (kh+1) x (kw+1) block of inputs, with (kh+1)(kw+1) matrix products
    over the channels instead of 4 kh kw (3x3: 16 against 36).

    Every transform is a sum of integers with small integer coefficients, so it is exact where
    ``exact`` says that no value can reach 2**53 (checked from the weights, for inputs up to
    ACT_LIMIT): the result is the direct sums', bit for bit. The inputs are transformed in chunks
    of whole rows of blocks (CHUNK_TILES blocks at most), the outputs (Kronecker product of the
    1-D transforms, a matrix product) OUTPUT_BLOCK channels at a time."""

    def __init__(self, kernel: np.ndarray) -> None:
        """``kernel``: integer taps (kh, kw, out, in)."""
        self.size = kernel.shape[:2]
        (self.b_rows, g_rows, a_rows, scale_rows), (self.b_cols, g_cols, a_cols, scale_cols) = (_F2[n] for n in self.size)
        self.scale = scale_rows * scale_cols
        self.outputs = np.kron(a_rows, a_cols)  # (4, alpha^2): the 2x2 block, row-major
        # (alpha^2, out, in): the transformed kernel per input-block position
        self.kernel = np.einsum("ik,klop,jl->ijop", g_rows, kernel, g_cols).reshape(-1, *kernel.shape[2:])
        largest_input = ACT_LIMIT * np.abs(self.b_rows).sum(axis=1).max() * np.abs(self.b_cols).sum(axis=1).max()
        largest_product = np.abs(self.kernel).sum(axis=2).max() * largest_input
        self.exact = largest_product * np.abs(self.outputs).sum(axis=1).max() < 2**53

    def chunks(self, rows: int, cols: int) -> list[tuple[int, int, int]]:
        """The chunks of ``rows`` x ``cols`` outputs: (first block row, block rows, block columns)."""
        block_rows, block_cols = -(-rows // 2), -(-cols // 2)
        step = max(1, CHUNK_TILES // block_cols)
        return [(first, min(step, block_rows - first), block_cols) for first in range(0, block_rows, step)]

    def empty(self, channels: int, count: int, block_cols: int) -> np.ndarray:
        """An empty chunk of transformed inputs: (alpha^2, channels, block rows, block columns)."""
        return np.empty(((self.size[0] + 1) * (self.size[1] + 1), channels, count, block_cols))

    def transform(self, x: np.ndarray, top: int, left: int, first: int, chunk: np.ndarray) -> None:
        """Fill ``chunk`` (some input channels of a chunk from ``empty``) with B^T d B of the input
        blocks of x (those channels), the block of the first output reading x[:, top, left]."""
        (kh, kw), (_, channels, count, block_cols) = self.size, chunk.shape
        window = _window(x, top + 2 * first, 2 * count + kh - 1, left, 2 * block_cols + kw - 1)
        window_rows = [window[:, k : k + 2 * count - 1 : 2] for k in range(kh + 1)]
        for i, b_row in enumerate(self.b_rows):  # rows, then columns
            rows_i = _combine(b_row, window_rows, np.empty((channels, count, window.shape[2])))
            columns = [rows_i[:, :, k : k + 2 * block_cols - 1 : 2] for k in range(kw + 1)]
            for j, b_col in enumerate(self.b_cols):
                _combine(b_col, columns, chunk[i * (kw + 1) + j])

    def __call__(self, first: int, chunk: np.ndarray, outputs: slice, out: np.ndarray) -> None:
        """The correlation's ``outputs`` channels into ``out`` (out, rows, cols), for the blocks of
        one chunk of transformed inputs (its first block row ``first``)."""
        _, _, count, block_cols = chunk.shape
        rows = min(2 * count, out.shape[1] - 2 * first)
        inputs = chunk.reshape(*chunk.shape[:2], -1)
        for channel in range(outputs.start, outputs.stop, OUTPUT_BLOCK):
            kernel = self.kernel[:, channel : min(channel + OUTPUT_BLOCK, outputs.stop)]
            products = np.matmul(kernel, inputs)  # (alpha^2, out, blocks)
            blocks = (self.outputs @ products.reshape(len(products), -1)).reshape(2, 2, kernel.shape[1], count, block_cols)
            blocks = blocks.transpose(2, 3, 0, 4, 1).reshape(kernel.shape[1], 2 * count, 2 * block_cols)
            target = out[channel - outputs.start : channel - outputs.start + kernel.shape[1], 2 * first : 2 * first + rows]
            np.multiply(blocks[:, :rows, : out.shape[2]], 1 / self.scale, out=target)  # exact: a power of two


@dataclass(frozen=True)
class _Phase:
    """The outputs s*a + row, s*b + col of a (transposed) convolution: a stride-1 correlation of the
    input whose first output reads input row ``top``, column ``left``."""

    row: int
    col: int
    top: int
    left: int
    correlation: _Winograd


class IntegerConv:
    """One (transposed) convolution with integer weights, evaluated exactly with float64 matrix
    products. ``weight`` is laid out as torch lays it out: (out, in, k, k) for a convolution, (in,
    out, k, k) for a transposed one; ``bias`` (out,).

    A stride-1 convolution of 2x2 or 3x3 taps, and a transposed convolution whose output phases
    each take at most 3x3 taps (5x5 at stride 2: 3x3, 3x2, 2x3 and 2x2), run as Winograd
    correlations (``_Winograd``) wherever those are exact; other layers, one matrix product per
    kernel tap. kodim23's hyper-synthesis took 23 ms on 2 threads and 32 on one, against 32-33 and
    48 tap by tap (two runs, alternating)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, spec: ConvSpec) -> None:
        self.spec = spec
        self.weight = np.asarray(weight, dtype=np.float64)
        # Per tap, the (out, in) matrix that multiplies the input's channels.
        taps = self.weight.transpose(2, 3, 0, 1) if not spec.transposed else self.weight.transpose(2, 3, 1, 0)
        self.taps = np.ascontiguousarray(taps)
        self.bias = np.asarray(bias, dtype=np.float64)
        # The largest possible sum: every input at the activation limit with its weight's sign.
        worst = np.abs(self.taps).sum(axis=(0, 1, 3)).max()
        if worst * ACT_LIMIT + np.abs(self.bias).max() >= 2**53:
            raise VaecodecError("weights too large for exact integer entropy parameters")
        # Added before the rescaling from WEIGHT_BITS + ACT_BITS fractional bits to ACT_BITS: the
        # rounding is half up.
        self.rounding_bias = self.bias[:, None, None] + (1 << (WEIGHT_BITS - 1))
        self.phases = self._phases()

    def _phases(self) -> list[_Phase]:
        """The Winograd correlations that make up this layer, or none (tap by tap)."""
        k, s, p = self.taps.shape[0], self.spec.stride, self.spec.padding
        if not self.spec.transposed:
            usable = s == 1 and 1 < k <= 3
            phases = [_Phase(0, 0, -p, -p, _Winograd(self.taps))] if usable else []
        else:
            # Output row s*a + r sums input rows a + e over the taps t with e = (p + r - t) / s whole
            # (as ``vaecodec.model.inference.SubPixelConv``): a correlation with those taps, reversed.
            taps = [[t for t in range(k) if (p + r - t) % s == 0] for r in range(s)]
            if any(not 0 < len(row) <= 3 for row in taps):
                return []
            phases = [_Phase(r, c, (p + r - rows[-1]) // s, (p + c - cols[-1]) // s,
                             _Winograd(self.taps[rows[::-1]][:, cols[::-1]]))
                      for r, rows in enumerate(taps) for c, cols in enumerate(taps)]
        return phases if all(phase.correlation.exact for phase in phases) else []

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        k, s, p = self.taps.shape[0], self.spec.stride, self.spec.padding
        if self.spec.transposed:
            extra = k - 2 * p + self.spec.output_padding
            return (height - 1) * s + extra, (width - 1) * s + extra
        return (height + 2 * p - k) // s + 1, (width + 2 * p - k) // s + 1

    def __call__(self, x: np.ndarray, workers: int = 1, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
        """(1, in, H, W) float64 integers -> (1, out, H', W'), rescaled to ACT_BITS. ``workers``
        threads (of ``pool``, or of a pool of their own) share out the output channels (each
        output's sums are the same: exact) and the input transforms' channels."""
        k, outputs, inputs = self.taps.shape[1:]
        rows, cols = self.output_size(*x.shape[2:])
        # each tap multiplies every input (transposed) or is multiplied into every output
        positions = x.shape[2] * x.shape[3] if self.spec.transposed else rows * cols
        count = min(workers, max(1, outputs // 32)) if positions * k * k * outputs * inputs >= SHARED_MIN_PRODUCTS else 1
        if count > 1 and pool is None:
            with ThreadPoolExecutor(count) as own:
                return self(x, count, own)
        each = pool.map if count > 1 else map

        def share(task: Callable[[slice], None], total: int) -> None:
            list(each(task, _parts(total, count)))

        out = np.empty((outputs, rows, cols))
        self._fill(x[0], out, share)
        return out[None]

    def _fill(self, x: np.ndarray, out: np.ndarray, share: Callable[[Callable[[slice], None], int], None]) -> None:
        """``out`` from (in, H, W), ``share`` running each task over parts of its channels."""
        s, (rows, cols) = self.spec.stride, out.shape[1:]
        sizes = [(len(range(phase.row, rows, s)), len(range(phase.col, cols, s))) for phase in self.phases]
        if not self.phases or min(min(size) for size in sizes) == 0:
            run = self._transposed if self.spec.transposed else self._convolution

            def direct(outputs: slice) -> None:
                out[outputs] = run(x, outputs)
                self._finish(out[outputs], outputs)

            share(direct, len(out))
            return
        # Round k takes every phase's k-th chunk of inputs (their chunks alike but for a row), so
        # that the threads meet twice a round rather than twice per phase and chunk; the last
        # round's tasks finish their outputs. One round's inputs are held at a time.
        rounds = list(zip_longest(*(phase.correlation.chunks(*size) for phase, size in zip(self.phases, sizes))))
        for number, chunks in enumerate(rounds, 1):
            work = [(phase, chunk[0], phase.correlation.empty(len(x), *chunk[1:]))
                    for phase, chunk in zip(self.phases, chunks) if chunk is not None]

            def transform(channels: slice) -> None:
                for phase, first, inputs in work:
                    phase.correlation.transform(x[channels], phase.top, phase.left, first, inputs[:, channels])

            def multiply(outputs: slice) -> None:
                for phase, first, inputs in work:
                    phase.correlation(first, inputs, outputs, out[outputs, phase.row :: s, phase.col :: s])
                if number == len(rounds):
                    self._finish(out[outputs], outputs)

            share(transform, len(x))
            share(multiply, len(out))

    def _finish(self, sums: np.ndarray, outputs: slice) -> None:
        """In place, exactly: the sums plus the bias, rescaled from WEIGHT_BITS + ACT_BITS
        fractional bits to ACT_BITS, rounding half up, clamped."""
        sums += self.rounding_bias[outputs]
        sums *= 1 / (1 << WEIGHT_BITS)
        np.floor(sums, out=sums)
        np.clip(sums, -ACT_LIMIT, ACT_LIMIT, out=sums)

    def _convolution(self, x: np.ndarray, outputs: slice) -> np.ndarray:
        k, s, p = self.taps.shape[0], self.spec.stride, self.spec.padding
        padded = np.pad(x, ((0, 0), (p, p), (p, p)))
        rows, cols = self.output_size(*x.shape[1:])
        taps = self.taps[:, :, outputs]
        acc = np.zeros((taps.shape[2], rows * cols))
        for kh in range(k):
            for kw in range(k):
                window = padded[:, kh : kh + s * (rows - 1) + 1 : s, kw : kw + s * (cols - 1) + 1 : s]
                acc += taps[kh, kw] @ window.reshape(len(x), -1)
        return acc.reshape(-1, rows, cols)

    def _transposed(self, x: np.ndarray, outputs: slice) -> np.ndarray:
        k, s, p = self.taps.shape[0], self.spec.stride, self.spec.padding
        _, height, width = x.shape
        rows, cols = self.output_size(height, width)
        taps = self.taps[:, :, outputs]
        out = np.zeros((taps.shape[2], max(s * (height - 1) + k, p + rows), max(s * (width - 1) + k, p + cols)))
        flat = x.reshape(len(x), -1)
        for kh in range(k):
            for kw in range(k):
                spread = (taps[kh, kw] @ flat).reshape(-1, height, width)
                out[:, kh : kh + s * (height - 1) + 1 : s, kw : kw + s * (width - 1) + 1 : s] += spread
        return out[:, p : p + rows, p : p + cols]


def integer_leaky_relu(x: np.ndarray) -> np.ndarray:
    """floor(x * LEAKY_NUMERATOR / 4096) where x < 0, else x: for integers that is the larger of the
    two (the product is exact: the slope is a multiple of 2**-12, the sums far below 2**53)."""
    sloped = x * (LEAKY_NUMERATOR / 4096)
    np.floor(sloped, out=sloped)
    return np.maximum(x, sloped, out=sloped)


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
    ``workers`` threads sharing out the output channels and the input transforms (tap by tap,
    kodim23's hyper-synthesis took 31-34 ms on 2 such threads, 56-59 on one). Two BLAS threads
    instead made kodim23's hyper-synthesis alone faster on an idle machine (41 ms against 56, tap by
    tap) but the whole encode slower
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
        with _blas().limit(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
            for layer in self.layers:
                x = layer(x, workers, pool) if isinstance(layer, IntegerConv) else layer(x)
        return x
