"""Determinism: the same bytes and the same pixels whatever the thread count, and entropy
parameters that are exact, so encoder and decoder cannot disagree by a rounding error.

A learned codec desynchronises when the decoder selects a coding distribution that differs from
the encoder's by one rounding (another thread count, another CPU, a GPU). vaecodec selects them
with integers only (``vaecodec.model.fixed_point``, ``vaecodec.latent``, ``vaecodec.entropy.tables``): the tests below
show those are bit-identical whatever order the sums are taken in, and run the float transforms
in separate processes with different thread counts.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import data as samples

import vaecodec
from vaecodec.latent.hyperprior import IntegerEntropyParameters
from vaecodec.model.fixed_point import ACT_BITS

THREAD_COUNTS = (1, 2)
# The default ("auto": bf16 where native) and fp32, the precision every machine has.
PRECISIONS = ("auto", "fp32")

# Run in a fresh process with ``threads`` torch threads: encode every PNG of a folder and decode
# every .vae of it at each precision, writing NAME-PRECISION-THREADS.vae and .npy beside them.
WORKER = """
import sys
from pathlib import Path
import numpy as np, torch
from PIL import Image
threads, folder = int(sys.argv[1]), Path(sys.argv[2])
torch.set_num_threads(threads)
import vaecodec
for precision in sys.argv[3:]:
    for path in sorted(folder.glob("*.png")):
        data = vaecodec.compress(Image.open(path), quality=60, precision=precision)
        (folder / f"{path.stem}-{precision}-{threads}.vae").write_bytes(data)
    for path in sorted(folder.glob("*.vae")):
        if "-" not in path.stem:
            pixels = vaecodec.decompress(path.read_bytes(), precision=precision)
            np.save(folder / f"{path.stem}-{precision}-{threads}.npy", np.asarray(pixels))
"""


@pytest.fixture(scope="module")
def coded_with_each_thread_count(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 256x192 photo and a 177x293 one (odd sizes pad), encoded and decoded in one process per thread count."""
    folder = tmp_path_factory.mktemp("threads")
    photos = {"photo": samples.astronaut()[100:292, 100:356], "odd": samples.coffee()[13:190, 7:300]}
    for name, pixels in photos.items():
        Image.fromarray(pixels).save(folder / f"{name}.png")
        (folder / f"{name}.vae").write_bytes(vaecodec.compress(pixels, quality=60))
    for threads in THREAD_COUNTS:
        subprocess.run([sys.executable, "-c", WORKER, str(threads), str(folder), *PRECISIONS], check=True, timeout=300)
    return folder


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", ["photo", "odd"])
def test_same_bytes_whatever_the_thread_count(coded_with_each_thread_count: Path, name: str, precision: str) -> None:
    files = {(coded_with_each_thread_count / f"{name}-{precision}-{n}.vae").read_bytes() for n in THREAD_COUNTS}
    assert len(files) == 1
    if precision == "auto":
        assert files == {(coded_with_each_thread_count / f"{name}.vae").read_bytes()}  # and this process's


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", ["photo", "odd"])
def test_same_pixels_whatever_the_thread_count(coded_with_each_thread_count: Path, name: str, precision: str) -> None:
    first, *others = (np.load(coded_with_each_thread_count / f"{name}-{precision}-{n}.npy") for n in THREAD_COUNTS)
    assert all(np.array_equal(first, other) for other in others)


# -- the integer entropy parameters --------------------------------------------------------------

def reversed_sums(params: IntegerEntropyParameters) -> IntegerEntropyParameters:
    """The same function with every convolution's input and output channels reversed (and the
    network's input and output flipped to match): each sum runs over its terms in another order."""
    flip = lambda x: x.flip(1)  # noqa: E731
    layers = []
    for layer in params.layers:
        if hasattr(layer, "weight"):
            layer = copy.copy(layer)
            layer.weight, layer.bias = layer.weight.flip(0, 1).contiguous(), layer.bias.flip(0).contiguous()
        layers.append(layer)
    reordered = copy.copy(params)
    reordered.layers = [flip, *layers, flip]
    return reordered


@pytest.fixture(scope="module")
def hyper_latents(codec: vaecodec.Codec) -> list[torch.Tensor]:
    """A photo's hyper-latent, and a random one over the whole range the tables code."""
    with torch.no_grad():
        z_photo = torch.round(codec.model.h_a(codec._analyse(samples.astronaut()[:256, :320]).latent.y)).to(torch.int64)
    radius, generator = codec._main.coder.hyper_tables.radius, torch.Generator().manual_seed(0)
    z_random = torch.randint(-radius, radius + 1, (1, len(codec._main.coder.z_offsets), 7, 9), generator=generator)
    return [z_photo, z_random + codec._main.coder.z_offsets[None, :, None, None]]


def test_entropy_parameters_do_not_depend_on_summation_order(codec: vaecodec.Codec, hyper_latents) -> None:
    """Reversed channel orders, a channels-last layout and other thread counts: bit-identical."""
    params, threads = codec._main.coder.entropy_parameters, torch.get_num_threads()
    reordered = reversed_sums(params)
    try:
        for z in hyper_latents:
            means, log_scales = params(z)
            others = [reordered(z), params(z.contiguous(memory_format=torch.channels_last))]
            for count in THREAD_COUNTS:
                torch.set_num_threads(count)
                others.append(params(z))
            assert all(torch.equal(other[0], means) and torch.equal(other[1], log_scales) for other in others)
    finally:
        torch.set_num_threads(threads)


def test_float32_sums_would_depend_on_the_order(codec: vaecodec.Codec, hyper_latents) -> None:
    """The control: the second layer in float32 rounds differently when its sums change order,
    which integer sums in float64, exact while below 2**53, rule out."""
    params = codec._main.coder.entropy_parameters
    activations = params.layers[1](params.layers[0](hyper_latents[1].double() * (1 << ACT_BITS)))
    conv = params.layers[2]
    op, extra = (F.conv_transpose2d, (conv.output_padding,)) if conv.transposed else (F.conv2d, ())

    def convolve(dtype: torch.dtype, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return op(x.to(dtype), weight.to(dtype), None, conv.stride, conv.padding, *extra)

    flipped = (conv.weight.flip(0 if conv.transposed else 1), activations.flip(1))  # input channels reversed
    assert not torch.equal(convolve(torch.float32, conv.weight, activations), convolve(torch.float32, *flipped))
    assert torch.equal(convolve(torch.float64, conv.weight, activations), convolve(torch.float64, *flipped))


# -- CPU and GPU ------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@needs_cuda
def test_files_cross_between_cpu_and_gpu(codec: vaecodec.Codec, photo: Image.Image) -> None:
    """A file encoded on one decodes on the other: the streams decode to the end (no
    desynchronisation), and the float synthesis differs by at most one level per pixel."""
    gpu = vaecodec.Codec(device="cuda")
    for encoder in (codec, gpu):
        file = encoder.compress(photo, quality=60)
        on_cpu = np.asarray(codec.decompress(file)).astype(int)
        on_gpu = np.asarray(gpu.decompress(file)).astype(int)
        assert np.abs(on_cpu - on_gpu).max() <= 1
