"""The trained transforms rewritten for coding: the same functions, in forms CPUs run faster.

Training keeps the textbook layers; a codec runs these equivalents (equal up to float rounding).
Measured on the project's CPU, one thread, on a 288x768 strip of a photo (with the allocator
setting of ``vaecodec.allocator``):

- the analysis runs on channels-last activations, the layout oneDNN computes in: 67 -> 58 ms
  (its stride-2 convolutions gain; the transposed ones of the synthesis do not);
- the synthesis's last layer, a stride-2 transposed convolution to RGB, which oneDNN runs at a
  fraction of its speed with 3 output channels, becomes a stride-1 convolution to 12 channels
  and a depth-to-space (a sub-pixel convolution): 73 -> 63 ms for the synthesis.

With bf16 (``vaecodec.model.precision``), the layers run with bf16 weights and activations, the
numerically delicate ones in float32 (see BF16_FULL): on a whole 768x512 photo, one thread, the
analysis took 134 ms against 334 in fp32 and the synthesis 165 against 371.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from vaecodec.model.layers import GDN

# Layer types that stay in float32 when the transforms run in bf16 (besides the synthesis's last
# layer). Measured on kodim01/15/23 at qualities 0/50/100, CPU time on one thread, against fp32:
# with GDN in float32, encode 1.29x and decode 1.51x faster and 0.00-0.02 dB lower; with GDN in
# bf16 too, 1.57x and 1.93x faster and 0.00-0.08 dB lower (the most at quality 100). The
# conversions around each float32 GDN cost most of what bf16 gains, so GDN runs in bf16.
BF16_FULL: tuple[type, ...] = ()


class SubPixelConv(nn.Module):
    """A strided transposed convolution as a stride-1 convolution to every output phase and a
    depth-to-space.

    Output row ``stride*a + r`` sums input rows ``a + e`` over the kernel taps ``k`` for which
    ``e = (padding + r - k) / stride`` is whole; the new kernel spans those offsets.
    """

    def __init__(self, deconv: nn.ConvTranspose2d) -> None:
        super().__init__()
        (s, s_w), (p, p_w), (k, k_w) = deconv.stride, deconv.padding, deconv.kernel_size
        if (s, p, k) != (s_w, p_w, k_w) or deconv.output_padding[0] != s + 2 * p - k:
            raise ValueError("only square kernels, with the output size stride x input")
        taps = [(r, kh, e) for r in range(s) for kh in range(k) for e, rest in [divmod(p + r - kh, s)] if rest == 0]
        low, high = min(e for *_, e in taps), max(e for *_, e in taps)
        in_channels, out_channels = deconv.weight.shape[:2]
        weight = deconv.weight.new_zeros(out_channels, s, s, in_channels, high - low + 1, high - low + 1)
        for rh, kh, eh in taps:
            for rw, kw, ew in taps:
                weight[:, rh, rw, :, eh - low, ew - low] = deconv.weight.detach()[:, :, kh, kw].T
        self.stride, self.padding = s, (-low, high, -low, high)
        self.weight = nn.Parameter(weight.flatten(0, 2), requires_grad=False)
        self.bias = nn.Parameter(deconv.bias.detach().repeat_interleave(s * s), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(F.conv2d(F.pad(x, self.padding), self.weight, self.bias), self.stride)


class _InverseGDNFunction(torch.autograd.Function):
    """IGDN, y = x * s with s = sqrt(beta + gamma * x^2), and its gradient to x written out:
    g * s + x * gamma^T (g * x / s), four elementwise passes and one 1x1 convolution, where
    autograd's chain of the textbook layer takes about eight."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        s = F.conv2d(x * x, gamma, beta).sqrt_()
        ctx.save_for_backward(x, s, gamma)
        return x * s

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        x, s, gamma = ctx.saved_tensors
        spread = F.conv2d((g * x).div_(s), gamma.transpose(0, 1))
        return spread.mul_(x).addcmul_(g, s), None, None


class InverseGDNForGradients(nn.Module):
    """A trained IGDN (``GDN(inverse=True)``) with fixed beta and gamma and a written-out gradient
    to its input, for the encode effort, which sends the synthesis back about once per forward: a
    pass of a 320x768 strip forward and back took 150 ms instead of 165 (bf16, one thread)."""

    def __init__(self, gdn: GDN) -> None:
        super().__init__()
        beta, gamma = (tensor.detach().clone() for tensor in gdn.beta_gamma())
        self.register_buffer("beta", beta)
        self.register_buffer("gamma", gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _InverseGDNFunction.apply(x, self.beta, self.gamma)


class ChannelsLast(nn.Module):
    """Runs a network on channels-last activations (its weights converted once)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x.contiguous(memory_format=torch.channels_last))


class InPrecision(nn.Module):
    """Runs a layer with its weights and activations in ``dtype``; hands back float32."""

    def __init__(self, layer: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.layer, self.dtype = layer.to(dtype), dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.to(self.dtype)).float()


def _in_precision(layers: list[nn.Module], dtype: torch.dtype, full: tuple[type, ...], last_full: bool) -> nn.Sequential:
    """The layers with runs of reduced-precision ones between those kept in float32 (the types in
    ``full``, and the last layer if ``last_full``): each run converts its input once."""
    groups: list[nn.Module] = []
    run: list[nn.Module] = []
    for index, layer in enumerate(layers):
        if isinstance(layer, full) or (last_full and index == len(layers) - 1):
            if run:
                groups.append(InPrecision(nn.Sequential(*run), dtype))
                run = []
            groups.append(layer)
        else:
            run.append(layer)
    if run:
        groups.append(InPrecision(nn.Sequential(*run), dtype))
    return nn.Sequential(*groups)


def analysis_for_coding(g_a: nn.Sequential, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The analysis transform on channels-last activations (a copy: training's layout is kept),
    in ``dtype`` (BF16_FULL's layers in float32); the latent comes out in float32."""
    network = copy.deepcopy(g_a)
    if dtype != torch.float32:
        network = _in_precision(list(network), dtype, BF16_FULL, last_full=False)
    return ChannelsLast(network).eval()


def synthesis_for_coding(g_s: nn.Sequential, dtype: torch.dtype = torch.float32, exact_output: bool = True) -> nn.Module:
    """The synthesis transform, its last (RGB) transposed convolution as a sub-pixel convolution,
    in ``dtype`` with the last layer (and BF16_FULL's) in float32: the 8-bit output needs more
    than bf16's 8 bits of mantissa (measured: 0.02-0.05 dB at quality 100 when it ran in bf16).

    ``exact_output=False`` runs the last layer in ``dtype`` too, for the encode effort's search (its
    gradients, and its values, compared only with each other), which needs no 8-bit precision: a
    768x256 strip's pass forward and back took 161 ms instead of 191 (bf16, one thread); its
    inverse GDNs get a written-out gradient (``InverseGDNForGradients``)."""
    *rest, last = copy.deepcopy(g_s)
    if not exact_output:
        rest = [InverseGDNForGradients(layer) if isinstance(layer, GDN) and layer.inverse else layer for layer in rest]
    layers = [*rest, SubPixelConv(last)]
    if dtype == torch.float32:
        return nn.Sequential(*layers).eval()
    return ChannelsLast(_in_precision(layers, dtype, BF16_FULL, last_full=exact_output)).eval()
