"""The encode effort: optimised latents in ordinary files, deterministic, within the targets.

What the effort buys (BD-rate, encode time) is measured by the bench (``bench/effort``), not here.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
torch = pytest.importorskip("torch", reason="needs the torch extra")
import torch.nn.functional as F
from PIL import Image
from skimage import data

import vaecodec
from vaecodec import ratecontrol
from vaecodec.bench.codecs import BenchOptions, build_codecs
from vaecodec.cli.effort import terminal_progress
from vaecodec.cli.main import main
from vaecodec.codec import AnalysedImage, get_codec
from vaecodec.engine.tiles import SYNTHESIS_TILING
from vaecodec.effort import DEFAULT_EFFORT, Schedule, schedule, size_problem
from vaecodec.format.container import parse
from vaecodec.latent import sga
from vaecodec.latent.hyperprior import GainedLatent
from vaecodec.model.grow import with_context
from vaecodec.model.rate_levels import QUALITY_STEPS, level_of, quality_units
from vaecodec.model.weights import load_weights, serialize_weights, weights_from_bytes

from conftest import psnr

EFFORT = 3

# In a fresh process with ``threads`` torch threads: code image.npy of a folder at EFFORT.
WORKER = f"""
import sys
from pathlib import Path
import numpy as np, torch
threads, folder = int(sys.argv[1]), Path(sys.argv[2])
torch.set_num_threads(threads)
import vaecodec
pixels = np.load(folder / "image.npy")
(folder / f"effort-{{threads}}.vae").write_bytes(vaecodec.compress(pixels, quality=50, effort={EFFORT}))
"""


@pytest.fixture(scope="module")
def tall() -> np.ndarray:
    """A 300x112 photo: its latent spans two of the synthesis's 256-row strips."""
    return data.astronaut()[0:300, 180:292]


def test_same_bytes_at_one_and_two_threads(tall: np.ndarray, tmp_path: Path) -> None:
    np.save(tmp_path / "image.npy", tall)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(threads), str(tmp_path)]) for threads in (1, 2)]
    assert [worker.wait(timeout=300) for worker in workers] == [0, 0]
    files = {(tmp_path / f"effort-{threads}.vae").read_bytes() for threads in (1, 2)}
    assert len(files) == 1
    assert files == {vaecodec.compress(tall, quality=50, effort=EFFORT)}  # and this process's
    assert files != {vaecodec.compress(tall, quality=50)}  # the optimisation changed the symbols


def test_the_default_effort_is_the_plain_encoder(photo: Image.Image) -> None:
    assert vaecodec.compress(photo, 60, effort=DEFAULT_EFFORT) == vaecodec.compress(photo, 60)
    assert schedule(DEFAULT_EFFORT).steps == 0


def test_an_effort_file_decodes_with_the_plain_decoder(tall: np.ndarray) -> None:
    plain, optimised = (vaecodec.compress(tall, quality=50, effort=effort) for effort in (DEFAULT_EFFORT, EFFORT))
    header, other = parse(optimised), parse(plain)
    assert (header.width, header.height, header.quality, header.weights_id) == (other.width, other.height,
                                                                                  other.quality, other.weights_id)
    assert header.hyper_stream == other.hyper_stream  # only the latent's symbols were chosen anew
    decoder = vaecodec.Codec(precision="fp32")  # a codec of its own, at the other precision
    decoded = np.asarray(decoder.decompress(optimised))
    assert decoded.shape == tall.shape
    assert psnr(decoded, tall) > psnr(np.asarray(decoder.decompress(plain)), tall) - 0.5


@pytest.fixture(scope="module")
def context_codec() -> vaecodec.Codec:
    """The shipped weights with context groups whose (random) corrections are not zero: a group's
    means and scales depend on the earlier groups' symbols."""
    torch.manual_seed(0)
    model = with_context(load_weights().model, (16, 16, 32, 80), hidden=8).eval()
    with torch.no_grad():
        for network in model.context:
            network[-1].weight.normal_(0, 0.02)
            network[-1].bias.normal_(0, 0.02)
    return vaecodec.Codec(weights_from_bytes(serialize_weights(model)), precision="fp32")


@pytest.fixture(scope="module")
def torch_codec() -> vaecodec.Codec:
    """The shipped weights on the torch engine, whose synthesis the search runs."""
    return get_codec(engine="torch")


class _Search(NamedTuple):
    """What refine is given for ``tall`` at quality 50, and the objective it optimises."""

    analysed: AnalysedImage
    units: int
    latent: GainedLatent
    lam: float
    synthesis: sga.Synthesis
    objective: sga._Objective


def _search(codec: vaecodec.Codec, pixels: np.ndarray) -> _Search:
    """(A codec on the torch engine: the search's synthesis is torch's.)"""
    analysed = codec.analyse(pixels)
    units = codec._main.level_units(quality_units(50))
    transforms = codec._main.transforms
    latent = transforms._tensors(codec._main.coder.gained(analysed.latent, units))
    lam = float(transforms.model.lambdas_at(torch.tensor([level_of(units)])))
    synthesis = sga.Synthesis(transforms.synthesis, *SYNTHESIS_TILING, scale=16)
    image = torch.from_numpy(analysed.pixels[None]).float().div_(255)
    return _Search(analysed, units, latent, lam, synthesis, sga._Objective(synthesis, image, latent, lam, workers=1))


@pytest.mark.parametrize(("weights", "effort"),
                         [("shipped", 2), ("shipped", EFFORT), ("shipped", 6), ("context", EFFORT), ("context", 6)])
def test_the_optimised_symbols_never_score_worse(weights: str, effort: int, request: pytest.FixtureRequest,
                                                 tall: np.ndarray) -> None:
    """refine keeps the plain symbols unless its own are better by the objective it optimises,
    and the file holds exactly those symbols: with context groups too, whose later groups' means
    and scales follow the chosen symbols of the earlier ones. Efforts 2 and 3 only polish, 6
    anneals first."""
    codec: vaecodec.Codec = request.getfixturevalue("torch_codec" if weights == "shipped" else "context_codec")
    analysed, units, latent, lam, synthesis, objective = _search(codec, tall)
    calls: list[tuple[int, int]] = []
    symbols = sga.refine(synthesis, objective.pixels, latent, lam, schedule(effort),
                         progress=lambda done, total: calls.append((done, total)))
    assert torch.equal(symbols, torch.round(symbols))
    assert objective.value(symbols) <= objective.value(torch.round(latent.residual))
    assert not torch.equal(symbols, torch.round(latent.residual))  # the run found better ones
    total = schedule(effort).passes_back
    assert calls == [(done, total) for done in range(1, total + 1)]
    # and the coder writes exactly these symbols
    coder = codec._main.coder
    gained = coder.gained(analysed.latent, units)
    stream = coder.encode(coder.with_symbols(analysed.latent, gained, symbols.numpy()), units)
    written = coder.symbol_information(analysed.latent.hyper_stream, stream, latent.residual.shape[-2:], units)
    assert np.array_equal(written["symbols"], symbols.numpy())


@pytest.mark.parametrize("fraction", [0.6, 0.95])
def test_a_size_target_with_an_effort_is_never_exceeded(tall: np.ndarray, fraction: float) -> None:
    target = round(len(vaecodec.compress(tall, quality=60)) * fraction)
    coded = vaecodec.compress(tall, size=target, effort=EFFORT)
    assert len(coded) <= target


def test_refined_files_that_miss_the_target_step_the_quality_down() -> None:
    """A refinement that grows the file is retried lower, and the plain file is the last resort."""
    plain = lambda step: bytes(step // 100)  # noqa: E731  (sizes grow with the quality)
    calls: list[int] = []

    def too_large_above_40(step: int) -> bytes:
        calls.append(step)
        return bytes(step // 100 + (50 if step > 4000 else 0))

    coded = ratecontrol.fit_size(plain, 60, refine=too_large_above_40)
    assert len(coded) <= 60 and calls[0] == 6099 and calls[-1] <= 4000
    never_fits = lambda step: bytes(1000)  # noqa: E731
    assert ratecontrol.fit_size(plain, 60, refine=never_fits) == plain(6099)
    assert ratecontrol.fit_psnr(plain, len, 30, refine=lambda step: bytes(0)) == plain(3000)
    assert ratecontrol.fit_psnr(plain, len, 30, refine=lambda step: plain(step + 200)) == plain(3200)
    assert QUALITY_STEPS == 10000  # the steps above assume it


@pytest.mark.parametrize("effort", [0, 10, 2.5, True, "3"])
def test_efforts_off_the_scale_are_refused(photo: Image.Image, effort: object) -> None:
    with pytest.raises(vaecodec.VaecodecError, match="effort must be a whole number from 1 to 9"):
        vaecodec.compress(photo, 60, effort=effort)  # type: ignore[arg-type]


def test_images_too_large_for_an_effort_are_refused() -> None:
    assert size_problem(DEFAULT_EFFORT, 6000, 4000) is None
    assert size_problem(9, 4000, 3000) is None
    assert "limited to images of 12.6 megapixels (memory); this one has 24.0" in size_problem(2, 6000, 4000)


def test_a_command_line_batch_writes_the_api_bytes(tmp_path: Path, capsys) -> None:
    """(``-j`` workers run the same ``compress_job``; the thread test above covers other processes.)"""
    images = {"a": data.astronaut()[:64, :96], "b": data.coffee()[:80, :64]}
    for name, pixels in images.items():
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
    assert main(["encode", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--effort", "2"]) == 0
    for name, pixels in images.items():
        assert (tmp_path / f"{name}.vae").read_bytes() == vaecodec.compress(pixels, effort=2)
    assert main(["encode", str(tmp_path / "a.png"), "--effort", "10", "-f"]) == 2
    assert capsys.readouterr().err.strip().endswith("effort must be a whole number from 1 to 9, got '10'")


def test_the_pillow_plugin_takes_an_effort(photo: Image.Image) -> None:
    buffer = io.BytesIO()
    photo.save(buffer, "VAE", quality=60, effort=2)
    assert buffer.getvalue() == vaecodec.compress(photo, 60, effort=2)


def test_the_bench_runs_efforts_as_variants() -> None:
    (codec,), _ = build_codecs(["vaecodec@effort=2"], BenchOptions())
    assert (codec.name, codec.label) == ("vaecodec@effort=2", "vaecodec (effort 2)")
    with pytest.raises(vaecodec.VaecodecError, match="effort must be"):
        build_codecs(["vaecodec@effort=0"], BenchOptions())


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_and_is_erased() -> None:
    terminal = _Terminal()
    with terminal_progress("photo.png", 5, terminal) as show:
        assert show is not None
        show(3, 16)
    assert terminal.getvalue() == "\r\x1b[Kphoto.png: effort 5, step 3/16\r\x1b[K"
    with terminal_progress("photo.png", 5, io.StringIO()) as show:  # not a terminal
        assert show is None
    with terminal_progress("photo.png", DEFAULT_EFFORT, _Terminal()) as show:  # nothing to show
        assert show is None


def test_the_curvature_estimate_matches_the_synthesis_response(tall: np.ndarray) -> None:
    """The polish's curvature (one backward pass of random signs, ``sga.curvature``) against its
    exact value: the squared change of the photo's decoded pixels per unit of a small move of each
    symbol, in float32, for the four channels of the largest curvature. The moves of a 7x7 grid of
    offsets run together, 112 pixels apart, beyond the reach of one symbol's response; each moved
    symbol's change is the change within three latent cells (48 pixels) of it.

    For every seed the estimate follows the symbols' own values (correlation about 0.9 here) more
    closely than its channels' means would, and its totals are unbiased."""
    fp32 = vaecodec.Codec(precision="fp32", engine="torch")
    _, _, latent, _, synthesis, objective = _search(fp32, tall)
    symbols = torch.round(latent.residual)
    height, width = objective.pixels.shape[-2:]
    responses = [objective.distortion(symbols, gradient=True, signs=objective.random_signs(seed)).response
                 for seed in range(1, 5)]
    estimates = [sga.curvature(response, latent)[0] for response in responses]
    channels = torch.topk(sum(estimates).mean(dim=(1, 2)), 4).indices
    decode = lambda symbols: synthesis.network(objective._decoded(symbols)).clamp(0, 1)  # noqa: E731
    move = 0.05
    exact = torch.zeros(len(channels), *symbols.shape[-2:])
    with torch.no_grad():
        before = decode(symbols)
        padded = before.shape[-2] - height, before.shape[-1] - width
        for index, channel in enumerate(channels):
            for row in range(7):
                for col in range(7):
                    moved = symbols.clone()
                    moved[:, channel, row::7, col::7] += move
                    change = (decode(moved) - before)[..., :height, :width].square().sum(dim=1, keepdim=True)
                    cells = F.avg_pool2d(F.pad(change, (0, padded[1], 0, padded[0])), 16, divisor_override=1)
                    near = F.avg_pool2d(cells, 7, stride=1, padding=3, divisor_override=1)
                    exact[index, row::7, col::7] = near[0, 0, row::7, col::7] / move**2
    assert 0.85 < float(sum(estimate[channels].sum() for estimate in estimates) / exact.sum() / 4) < 1.15
    off = lambda estimate: float((estimate - exact).square().sum() / exact.square().sum())  # noqa: E731
    for estimate in (estimate[channels] for estimate in estimates):
        assert off(estimate) < 0.7 * off(estimate.mean(dim=(1, 2), keepdim=True).expand_as(exact))
        assert np.corrcoef(estimate.flatten().numpy(), exact.flatten().numpy())[0, 1] > 0.8
    # more samples of signs, from one pass forward, estimate it better than one does on average
    samples = objective.distortion(symbols, gradient=True, signs=objective.random_signs(5, samples=4)).response
    assert samples.shape == (4, *symbols.shape[1:])
    single = np.mean([off(estimate[channels]) for estimate in estimates])
    assert off(sga.curvature(samples, latent)[0][channels]) < single


def test_polishing_lowers_the_objective_and_reports_its_errors(torch_codec: vaecodec.Codec, tall: np.ndarray) -> None:
    """polish ends on other symbols, of a lower objective than its start's, and the squared
    errors it reports (which spare the final choice two passes of the synthesis) are those of
    its symbols and of the symbols it started from."""
    _, _, latent, _, _, objective = _search(torch_codec, tall)
    plain = torch.round(latent.residual)
    result = sga.polish(objective, plain, Schedule(0, 3), advance=lambda: None)
    assert not torch.equal(result.symbols, plain)
    measured = {"end": objective.distortion(result.symbols, gradient=False).squared_error,
                "start": objective.distortion(plain, gradient=False).squared_error}
    assert result.squared_error == pytest.approx(measured["end"], rel=1e-6)
    assert result.start_squared_error == pytest.approx(measured["start"], rel=1e-6)
    assert objective.cost(result.symbols, measured["end"]) < objective.cost(plain, measured["start"])
