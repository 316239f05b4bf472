"""Determinism: the same bytes and the same pixels whatever the thread count, and entropy
parameters that are exact, so encoder and decoder cannot disagree by a rounding error.

A learned codec desynchronises when the decoder selects a coding distribution that differs from
the encoder's by one rounding (another thread count, another CPU, a GPU). vaecodec selects them
with integers only (``vaecodec.model.fixed_point``, ``vaecodec.latent``, ``vaecodec.entropy.tables``): the tests below
show those are bit-identical whatever order the sums are taken in, and run the float transforms
in separate processes with different thread counts, on each engine (``vaecodec.engine``).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vaecodec
from vaecodec.codec import get_codec
from vaecodec.engine import installed
from vaecodec.latent.hyperprior import IntegerEntropyParameters
from vaecodec.model.fixed_point import ACT_BITS, IntegerConv

from conftest import needs_torch, samples, torch

if torch is not None:
    import torch.nn.functional as F

THREAD_COUNTS = (1, 2)
# (engine, precision): the core install's ONNX Runtime, and OpenVINO and torch at their default
# ("auto": bf16 where native) and in fp32, the precision every machine has.
needs_openvino = pytest.mark.skipif(not installed("openvino"), reason="needs the openvino extra")
SETTINGS = [pytest.param(("onnxruntime", "auto"), id="onnxruntime-auto"),
            pytest.param(("openvino", "auto"), marks=needs_openvino, id="openvino-auto"),
            pytest.param(("openvino", "fp32"), marks=needs_openvino, id="openvino-fp32"),
            pytest.param(("torch", "auto"), marks=needs_torch, id="torch-auto"),
            pytest.param(("torch", "fp32"), marks=needs_torch, id="torch-fp32")]

# Run in a fresh process with ``threads`` threads (the strips, torch's, numpy's BLAS): encode every
# PNG of a folder and decode every .vae of it with an engine and precision, writing
# NAME-ENGINE-PRECISION-THREADS.vae and .npy beside them.
WORKER = """
import sys
from pathlib import Path
import numpy as np
from PIL import Image
threads, folder, engine, precision = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
if engine == "torch":
    import torch
    torch.set_num_threads(threads)
import vaecodec
from vaecodec.threads import set_threads
set_threads(threads)
codec = vaecodec.Codec(engine=engine, precision=precision)
tag = f"{engine}-{precision}-{threads}"
for path in sorted(folder.glob("*.png")):
    (folder / f"{path.stem}-{tag}.vae").write_bytes(codec.compress(Image.open(path), quality=60))
for path in sorted(folder.glob("*.vae")):
    if "-" not in path.stem:
        np.save(folder / f"{path.stem}-{tag}.npy", np.asarray(codec.decompress(path.read_bytes())))
"""


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 256x192 photo and a 177x293 one (odd sizes pad), as PNGs, and their files from this process."""
    folder = tmp_path_factory.mktemp("threads")
    pictures = {"photo": samples.astronaut()[100:292, 100:356], "odd": samples.coffee()[13:190, 7:300]}
    for name, pixels in pictures.items():
        Image.fromarray(pixels).save(folder / f"{name}.png")
        (folder / f"{name}.vae").write_bytes(vaecodec.compress(pixels, quality=60))
    return folder


@pytest.fixture(scope="module", params=SETTINGS)
def coded_with_each_thread_count(photos: Path, request: pytest.FixtureRequest) -> tuple[Path, str]:
    """The photos encoded and decoded in one process per thread count, with an engine and precision."""
    engine, precision = request.param
    for threads in THREAD_COUNTS:
        environment = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
        subprocess.run([sys.executable, "-c", WORKER, str(threads), str(photos), engine, precision], check=True,
                       timeout=300, env=environment)
    return photos, f"{engine}-{precision}"


@pytest.mark.parametrize("name", ["photo", "odd"])
def test_same_bytes_whatever_the_thread_count(coded_with_each_thread_count: tuple[Path, str], name: str) -> None:
    folder, setting = coded_with_each_thread_count
    files = {(folder / f"{name}-{setting}-{n}.vae").read_bytes() for n in THREAD_COUNTS}
    assert len(files) == 1
    engine, precision = setting.split("-")
    here = get_codec(engine=engine, precision=precision).compress(Image.open(folder / f"{name}.png"), quality=60)
    assert files == {here}  # and this process's


@pytest.mark.parametrize("name", ["photo", "odd"])
def test_same_pixels_whatever_the_thread_count(coded_with_each_thread_count: tuple[Path, str], name: str) -> None:
    folder, setting = coded_with_each_thread_count
    first, *others = (np.load(folder / f"{name}-{setting}-{n}.npy") for n in THREAD_COUNTS)
    assert all(np.array_equal(first, other) for other in others)


# -- the integer entropy parameters --------------------------------------------------------------

def reversed_sums(params: IntegerEntropyParameters) -> IntegerEntropyParameters:
    """The same function with every convolution's input and output channels reversed (and the
    network's input and output flipped to match): each sum runs over its terms in another order."""
    flip = lambda x: x[:, ::-1]  # noqa: E731
    layers = []
    for layer in params.network.layers:
        if isinstance(layer, IntegerConv):  # (out, in) or (in, out) first: both reversed
            layer = IntegerConv(layer.weight[::-1, ::-1].copy(), layer.bias[::-1].copy(), layer.spec)
        layers.append(layer)
    reordered = copy.copy(params)
    reordered.network = copy.copy(params.network)
    reordered.network.layers = [flip, *layers, flip]
    return reordered


@pytest.fixture(scope="module")
def hyper_latents(codec: vaecodec.Codec) -> list[np.ndarray]:
    """A photo's hyper-latent, and a random one over the whole range the tables code."""
    coder = codec._main.coder
    z_photo = codec._main.transforms.analyse(samples.astronaut()[:256, :320].transpose(2, 0, 1).copy())[1]
    radius, generator = coder.hyper_tables.radius, np.random.default_rng(0)
    z_random = generator.integers(-radius, radius + 1, (1, len(coder.z_offsets), 7, 9))
    return [z_photo, z_random + coder.z_offsets[None, :, None, None]]


def test_entropy_parameters_do_not_depend_on_summation_order(codec: vaecodec.Codec, hyper_latents) -> None:
    """Reversed channel orders in every sum: bit-identical means and log-scales."""
    params = codec._main.coder.entropy_parameters
    reordered = reversed_sums(params)
    for z in hyper_latents:
        (means, log_scales), (other_means, other_log_scales) = params(z), reordered(z)
        assert np.array_equal(means, other_means) and np.array_equal(log_scales, other_log_scales)


@needs_torch
def test_the_integer_hyper_synthesis_equals_torchs_float64_convolutions(codec: vaecodec.Codec, hyper_latents) -> None:
    """numpy's matrix products, tap by tap, and torch's float64 (transposed) convolutions of the
    same integers agree bit for bit, at every torch thread count: the sums are exact."""
    from integer_reference import float64_reference
    from vaecodec.model.fixed_point import to_fixed
    from vaecodec.model.weights import load_weights

    network, h_s = codec._main.coder.entropy_parameters.network, load_weights().model.h_s
    threads = torch.get_num_threads()
    try:
        for z in hyper_latents:
            x = to_fixed(z)
            for count in THREAD_COUNTS:
                torch.set_num_threads(count)
                assert np.array_equal(network(x), float64_reference(h_s, x))
    finally:
        torch.set_num_threads(threads)


@needs_torch
def test_float32_sums_would_depend_on_the_order(codec: vaecodec.Codec, hyper_latents) -> None:
    """The control: the second layer in float32 rounds differently when its sums change order,
    which integer sums in float64, exact while below 2**53, rule out."""
    layers = codec._main.coder.entropy_parameters.network.layers
    activations = torch.from_numpy(layers[1](layers[0](hyper_latents[1].astype(np.float64) * (1 << ACT_BITS))))
    conv = layers[2]
    transposed = conv.spec.transposed
    # back to torch's layout: (in, out, k, k) transposed, (out, in, k, k) otherwise
    weight = torch.from_numpy(conv.taps.transpose(3, 2, 0, 1) if transposed else conv.taps.transpose(2, 3, 0, 1)).contiguous()
    op, extra = (F.conv_transpose2d, (conv.spec.output_padding,)) if transposed else (F.conv2d, ())

    def convolve(dtype: torch.dtype, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return op(x.to(dtype), weight.to(dtype), None, conv.spec.stride, conv.spec.padding, *extra)

    flipped = (weight.flip(0 if transposed else 1), activations.flip(1))  # input channels reversed
    assert not torch.equal(convolve(torch.float32, weight, activations), convolve(torch.float32, *flipped))
    assert torch.equal(convolve(torch.float64, weight, activations), convolve(torch.float64, *flipped))


# -- CPU and GPU ------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(torch is None or not torch.cuda.is_available(), reason="needs CUDA")


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
