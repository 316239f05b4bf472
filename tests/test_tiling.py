"""Tiled transforms: the same result as whole-image coding, in bounded memory on large photos."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from fractions import Fraction

import numpy as np
import pytest
torch = pytest.importorskip("torch", reason="needs the torch extra")
from PIL import Image
from skimage import data

import vaecodec
from vaecodec.engine import installed, tiles as tiles_module
from vaecodec.latent import hyperprior as latent_hyperprior
from vaecodec.model.hyperprior import HyperpriorModel, ModelConfig
from vaecodec.model.tiling import map_tiles

from conftest import psnr


@pytest.fixture(scope="module")
def tiny_model() -> HyperpriorModel:
    torch.manual_seed(0)
    return HyperpriorModel(ModelConfig(8, 12)).eval()


def on_arrays(network: torch.nn.Module):
    """A torch network as the tiles call networks: numpy in, numpy out."""
    return lambda x: network(torch.from_numpy(np.ascontiguousarray(x))).detach().numpy()


@torch.no_grad()
def test_tiled_transforms_match_whole(tiny_model: HyperpriorModel) -> None:
    x = torch.rand(1, 3, 192, 256)
    y = tiny_model.g_a(x)
    assert np.allclose(map_tiles(on_arrays(tiny_model.g_a), x.numpy(), Fraction(1, 16), 64, 64), y.numpy(), atol=1e-5)
    assert np.allclose(map_tiles(on_arrays(tiny_model.g_s), y.numpy(), Fraction(16), 4, 4), tiny_model.g_s(y).numpy(),
                       atol=1e-5)


def test_tiled_integer_parameters_are_exact(codec: vaecodec.Codec, monkeypatch) -> None:
    coder = codec._main.coder
    z = np.random.default_rng(0).integers(-6, 7, (1, len(coder.z_offsets), 9, 11)) + coder.z_offsets[None, :, None, None]
    means, log_scales = coder.entropy_parameters(z)
    monkeypatch.setattr(latent_hyperprior, "TILE", 2)
    tiled_means, tiled_log_scales = coder.entropy_parameters(z)
    assert np.array_equal(means, tiled_means) and np.array_equal(log_scales, tiled_log_scales)


def test_tiled_coding_is_whole_image_coding(codec: vaecodec.Codec, monkeypatch) -> None:
    """The margins cover the receptive fields: strips and tiny tiles code as no tiles do, up to
    float rounding (other shapes may take other convolution kernels)."""
    image = data.astronaut()[:320, :448]
    tiled = codec.compress(image, quality=60)
    strips = np.asarray(codec.decompress(tiled), dtype=int)
    monkeypatch.setattr(tiles_module, "ANALYSIS_TILING", (4096, 0))
    monkeypatch.setattr(tiles_module, "SYNTHESIS_TILING", (256, 0))
    whole = codec.compress(image, quality=60)
    assert abs(len(tiled) - len(whole)) <= 0.002 * len(whole)
    assert np.abs(np.asarray(codec.decompress(tiled), dtype=int) - strips).max() <= 1
    monkeypatch.setattr(tiles_module, "SYNTHESIS_TILING", ((4, 4), 2))
    assert np.abs(np.asarray(codec.decompress(tiled), dtype=int) - strips).max() <= 1
    assert psnr(np.asarray(codec.decompress(whole)), image) == pytest.approx(psnr(strips.astype(np.uint8), image), abs=0.02)


def test_threads_across_tiles_change_nothing(tiny_model: HyperpriorModel) -> None:
    x = torch.rand(1, 3, 320, 192).numpy()
    with torch.no_grad():
        one = map_tiles(on_arrays(tiny_model.g_a), x, Fraction(1, 16), (64, 128), 32)
        several = map_tiles(on_arrays(tiny_model.g_a), x, Fraction(1, 16), (64, 128), 32, workers=3)
    assert np.array_equal(one, several)


@pytest.mark.slow
@pytest.mark.parametrize("engine", [name for name in ("onnxruntime", "openvino") if installed(name)])
@pytest.mark.parametrize("step", ["encode", "decode"])
def test_24_megapixel_photo_codes_in_under_1_gb(step: str, engine: str, tmp_path_factory) -> None:
    folder = tmp_path_factory.getbasetemp() / f"large-{engine}"
    folder.mkdir(exist_ok=True)
    script = textwrap.dedent(f"""
        import resource, sys
        import numpy as np
        from PIL import Image
        import vaecodec
        folder = {str(folder)!r}
        if {step!r} == "encode":
            photo = Image.fromarray(np.asarray(Image.open(sys.argv[1])))
            big = photo.resize((6000, 4000), Image.BICUBIC)
            del photo
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            open(folder + "/large.vae", "wb").write(vaecodec.Codec(engine={engine!r}).compress(big))
        else:
            image = vaecodec.Codec(engine={engine!r}).decompress(open(folder + "/large.vae", "rb").read())
            assert image.size == (6000, 4000)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """)
    source = folder / "source.png"
    Image.fromarray(data.astronaut()).save(source)
    result = subprocess.run([sys.executable, "-c", script, str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    peak = int(result.stdout.split()[-1])
    print(f"24-megapixel {step} on {engine}: peak {peak} MB")  # shown with -s, for the README's figure
    assert peak <= 1024  # peak resident MB, interpreter and image included


def test_tiles_pad_the_input_as_a_whole_padded_copy_would(tiny_model: HyperpriorModel) -> None:
    """``padded_size`` repeats the last row and column per tile: the same as padding the whole input."""
    x = torch.rand(1, 3, 300, 170)
    padded = torch.nn.functional.pad(x, (0, 22, 0, 20), mode="replicate").numpy()
    network = on_arrays(tiny_model.g_a)
    with torch.no_grad():
        for tile in ((64, 128), 512):
            whole = map_tiles(network, padded, Fraction(1, 16), tile, 32)
            assert np.array_equal(map_tiles(network, x.numpy(), Fraction(1, 16), tile, 32, padded_size=(320, 192)), whole)
