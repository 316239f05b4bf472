"""The transforms as coding runs them (vaecodec.model.inference) and the allocator setting."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
torch = pytest.importorskip("torch", reason="needs the torch extra")
from torch import nn

from vaecodec.model.hyperprior import HyperpriorModel, ModelConfig
from vaecodec.model.inference import InverseGDNForGradients, SubPixelConv, analysis_for_coding, synthesis_for_coding
from vaecodec.model.layers import GDN


@pytest.mark.parametrize(("kernel", "stride", "padding"), [(5, 2, 2), (3, 2, 1), (4, 2, 1), (5, 1, 2), (7, 3, 3), (2, 2, 0)])
@torch.no_grad()
def test_sub_pixel_convolution_is_the_transposed_convolution(kernel: int, stride: int, padding: int) -> None:
    torch.manual_seed(kernel * 10 + stride)
    deconv = nn.ConvTranspose2d(6, 3, kernel, stride, padding, output_padding=stride + 2 * padding - kernel)
    x = torch.randn(2, 6, 7, 9)
    assert torch.allclose(SubPixelConv(deconv)(x), deconv(x), atol=1e-5)


def test_sub_pixel_convolution_refuses_kernels_it_cannot_recast() -> None:
    with pytest.raises(ValueError):
        SubPixelConv(nn.ConvTranspose2d(6, 3, 5, 2, 2))  # no output padding: 2n - 1 rows, not 2n


@torch.no_grad()
def test_coding_transforms_are_the_trained_ones() -> None:
    torch.manual_seed(0)
    model = HyperpriorModel(ModelConfig(8, 12)).eval()
    x = torch.rand(1, 3, 128, 192)
    y = model.g_a(x)
    assert torch.allclose(analysis_for_coding(model.g_a)(x), y, atol=1e-5)
    assert torch.allclose(synthesis_for_coding(model.g_s)(y), model.g_s(y), atol=1e-5)
    assert not model.g_a[0].weight.is_contiguous(memory_format=torch.channels_last)  # training's copy untouched


@torch.no_grad()
def test_the_gradient_synthesis_runs_its_last_layer_in_bf16_and_stays_close() -> None:
    """The effort's gradient network (exact_output=False) differs from the coding one only in the
    last layer's precision: bf16 there, float32 in the decoder's."""
    torch.manual_seed(0)
    model = HyperpriorModel(ModelConfig(8, 12)).eval()
    y = model.g_a(torch.rand(1, 3, 128, 192))
    exact, gradients = (synthesis_for_coding(model.g_s, torch.bfloat16, exact_output=flag) for flag in (True, False))
    last_weights = [list(network.parameters())[-1].dtype for network in (exact, gradients)]  # the RGB layer's bias
    assert last_weights == [torch.float32, torch.bfloat16]
    reference = model.g_s(y)
    for network in (exact, gradients):
        assert (network(y).float() - reference).abs().max() < 0.05 * reference.abs().max()


def test_the_gradient_networks_inverse_gdn_has_the_textbook_layers_value_and_gradient() -> None:
    """The written-out IGDN gradient (``InverseGDNForGradients``) against autograd's through ``GDN``."""
    torch.manual_seed(0)
    gdn = GDN(6, inverse=True).double()
    with torch.no_grad():
        gdn.beta_sqrt.add_(torch.rand(6, dtype=torch.float64))
        gdn.gamma_sqrt.add_(0.2 * torch.rand(6, 6, dtype=torch.float64))
    fused = InverseGDNForGradients(gdn)
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    weights = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    values, gradients = [], []
    for layer in (gdn, fused):
        point = x.clone().requires_grad_(True)
        out = layer(point)
        (gradient,) = torch.autograd.grad((out * weights).sum(), point)
        values.append(out.detach())
        gradients.append(gradient)
    assert torch.allclose(values[0], values[1], rtol=1e-12, atol=0)
    assert torch.allclose(gradients[0], gradients[1], rtol=1e-10, atol=1e-12)
    assert not torch.allclose(gradients[0], weights * values[0] / x)  # the normalisation's own term counts


def _keep_freed_memory_in_a_fresh_process(environment: dict[str, str]) -> str:
    script = "from vaecodec.allocator import keep_freed_memory as k; print(k(1 << 26), k(1 << 20))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=True)
    return result.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator")
def test_allocator_setting_applies_and_a_smaller_request_keeps_it() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    assert _keep_freed_memory_in_a_fresh_process(environment) == "True True"


def test_allocator_setting_leaves_the_users_environment_alone() -> None:
    environment = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "131072"}
    assert _keep_freed_memory_in_a_fresh_process(environment) == "False False"

