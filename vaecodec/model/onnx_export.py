"""The float transforms as ONNX graphs, for an inference engine to run without torch (issue 39).

Training and export stay in torch; a codec without torch runs these graphs (float32, the height
and width dynamic: input "x", output "y"). The synthesis exports every transposed convolution in
its sub-pixel form (``vaecodec.model.inference.SubPixelConv``: a Conv and a DepthToSpace): ONNX
Runtime runs ConvTranspose slowly (issue 39: kodim23 on 2 threads of an AVX2 CPU, 209 ms for the
synthesis against torch's 163) and has given results other than PyTorch's with ``output_padding``.
A symmetric padding goes into the Conv rather than a Pad node. The outputs are neither rounded
nor clamped: the codec does that, as it does for torch's.

GDN and inverse GDN export as they are: a 1x1 Conv on x^2, a Sqrt, and a Div and Mul (GDN) or a
Mul (IGDN). On kodim23, ONNX Runtime's outputs differed from torch's by at most 2e-5 (analysis,
latents up to 84; no latent rounded differently) and 4e-6 (synthesis; 25 of 1.2M 8-bit values).
The legacy (TorchScript) exporter is used: it takes named dynamic axes, exports in a fraction of
a second, and folds the GDN's parameterisation (beta and gamma from their square roots) into
constants, where torch 2.14's dynamo exporter leaves Pow and Reshape nodes on the weights.
"""

from __future__ import annotations

import copy
import io
import warnings
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from vaecodec.model.inference import SubPixelConv

if TYPE_CHECKING:
    from vaecodec.model.hyperprior import HyperpriorModel

OPSET = 17
INPUT, OUTPUT = "x", "y"


class _SubPixelForExport(nn.Module):
    """``SubPixelConv`` with a symmetric padding inside the convolution (one Conv, no Pad)."""

    def __init__(self, layer: SubPixelConv) -> None:
        super().__init__()
        self.weight, self.bias, self.stride = layer.weight, layer.bias, layer.stride
        left, right, top, bottom = layer.padding
        self.inner = left if left == right == top == bottom else None
        self.padding = layer.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inner is not None:
            x = F.conv2d(x, self.weight, self.bias, padding=self.inner)
        else:
            x = F.conv2d(F.pad(x, self.padding), self.weight, self.bias)
        return F.pixel_shuffle(x, self.stride)


def _sub_pixel(network: nn.Sequential) -> nn.Sequential:
    """A copy of ``network`` with every ConvTranspose2d in sub-pixel form."""
    layers = [_SubPixelForExport(SubPixelConv(layer)) if isinstance(layer, nn.ConvTranspose2d) else layer
              for layer in copy.deepcopy(network)]
    return nn.Sequential(*layers).eval()


def _graph(network: nn.Module, channels: int, side: int) -> bytes:
    """The ONNX bytes of ``network`` (float32), traced on a (1, channels, side, side) input."""
    network = copy.deepcopy(network).float().eval()
    example = torch.zeros(1, channels, side, side)
    axes = {0: "batch", 2: "height", 3: "width"}
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # torch warns that the legacy exporter is deprecated (see the module docstring).
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(network, (example,), buffer, input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: axes, OUTPUT: axes}, opset_version=OPSET, do_constant_folding=True,
                          dynamo=False)
    return buffer.getvalue()


def analysis_graph(model: HyperpriorModel) -> bytes:
    """g_a: pixels (1, 3, H, W) in [0, 1] -> the latent (1, M, H/16, W/16)."""
    return _graph(model.g_a, 3, 64)


def hyper_analysis_graph(model: HyperpriorModel) -> bytes:
    """h_a: the latent (1, M, h, w) -> the hyper-latent (1, N, h/4, w/4), before rounding."""
    return _graph(model.h_a, model.config.latent_channels, 16)


def synthesis_graph(model: HyperpriorModel) -> bytes:
    """g_s in sub-pixel form: the latent (1, M, h, w) -> pixels (1, 3, 16h, 16w), unclamped."""
    return _graph(_sub_pixel(model.g_s), model.config.latent_channels, 4)
