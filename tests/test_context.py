"""The channel-conditional context coder: exact integer parameters, one stream of groups, version 2.

A model given context groups with zero corrections codes what it coded before (in the version 2
layout); with corrections, every group's parameters come from integer arithmetic on what the
decoder already has, so encoder and decoder agree whatever the thread count, and the float
network training optimises agrees with the integer one the coder runs.
"""

from __future__ import annotations

import numpy as np
import pytest
torch = pytest.importorskip("torch", reason="needs the torch extra")
from PIL import Image

import vaecodec
from vaecodec.cli.main import main
from vaecodec.format.container import parse
from vaecodec.latent.context import ContextCoder
from vaecodec.model.grow import with_context
from vaecodec.model.hyperprior import HyperpriorModel, ModelConfig
from vaecodec.model.weights import load_weights, serialize_weights, weights_from_bytes

from integer_reference import float64_reference

GROUPS = (2, 2, 4, 4)


@pytest.fixture(scope="module")
def plain() -> HyperpriorModel:
    torch.manual_seed(0)
    return HyperpriorModel(ModelConfig(8, 12)).eval()


@pytest.fixture(scope="module")
def with_corrections(plain: HyperpriorModel) -> HyperpriorModel:
    """The plain model with context groups whose corrections are not zero."""
    model = with_context(plain, GROUPS, hidden=8).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for network in model.context:
            network[-1].weight.normal_(0, 0.05)
            network[-1].bias.normal_(0, 0.05)
    return model


def codec_of(model: HyperpriorModel) -> vaecodec.Codec:
    return vaecodec.Codec(weights_from_bytes(serialize_weights(model)), precision="fp32")


def test_zero_corrections_code_as_before(plain: HyperpriorModel, photo: Image.Image) -> None:
    """The same symbols under the same tables (the groups only reorder the stream: a word or two)."""
    before, after = codec_of(plain), codec_of(with_context(plain, GROUPS, hidden=8).eval())
    for quality in (0, 70):
        old, new = parse(before.compress(photo, quality)), parse(after.compress(photo, quality))
        assert (old.version, new.version) == (1, 2) and old.hyper_stream == new.hyper_stream
        assert abs(len(old.latent_stream) - len(new.latent_stream)) <= 8
        old_symbols, new_symbols = before.symbol_information(old), after.symbol_information(new)
        for key in ("symbols", "scale_indexes"):
            assert np.array_equal(old_symbols[key], new_symbols[key])
        assert np.array_equal(np.asarray(before.decompress(old.to_bytes())), np.asarray(after.decompress(new.to_bytes())))


def test_corrected_groups_round_trip(with_corrections: HyperpriorModel, photo: Image.Image) -> None:
    codec = codec_of(with_corrections)
    assert isinstance(codec._main.coder, ContextCoder)
    for quality in (0, 50, 100):
        data = codec.compress(photo, quality)
        file = parse(data)
        information = codec.symbol_information(file)  # decodes the streams to their exact end
        prepared = codec.analyse(photo).latent
        gain, _ = codec._main.coder.gains(codec._main.level_units(file.quality_units))
        expected = np.round(prepared.y * gain - information["means"] * gain)
        assert np.array_equal(information["symbols"], expected)  # the decoder's means are the encoder's


def test_context_networks_equal_torchs_float64_convolutions(with_corrections: HyperpriorModel) -> None:
    """The groups' integer networks (numpy matrix products, tap by tap) give what torch's float64
    convolutions of the same integers give, bit for bit: exact sums, whatever the summation order."""
    trained = weights_from_bytes(serialize_weights(with_corrections))  # the weights as stored: half precision
    generator = np.random.default_rng(0)
    for network, float_network in zip(trained.coder.networks, trained.model.context):
        inputs = generator.integers(-(1 << 16), 1 << 16, (1, float_network[0].in_channels, 9, 11)).astype(np.float64)
        assert np.array_equal(network(inputs), float64_reference(float_network, inputs))


def test_the_integer_corrections_follow_the_float_network(with_corrections: HyperpriorModel) -> None:
    """What training optimises (float) is what the coder computes (integers), up to rounding."""
    coder = codec_of(with_corrections)._main.coder
    torch.manual_seed(2)
    means = (torch.round(torch.randn(1, 12, 5, 6) * 3 * 1024) / 1024).numpy()
    log_scales = torch.randint(-300, 600, (1, 12, 5, 6)).numpy()
    captured: list[tuple[np.ndarray, np.ndarray]] = []

    def zeros(group: slice, group_means: np.ndarray, indexes: np.ndarray) -> np.ndarray:
        captured.append((group_means, indexes))
        return np.zeros(indexes.shape, dtype=np.int64)

    coder._walk(means, log_scales, 0, zeros)
    network = with_corrections.context[0]
    with torch.no_grad():
        float_out = network(torch.from_numpy(np.concatenate([means[:, :2], log_scales[:, :2] / 256], axis=1)).float())
    assert np.allclose(captured[0][0], means[:, :2] + float_out[:, :2].numpy(), atol=2e-2)


def test_training_adds_context_groups_and_refuses_bad_ones(tmp_path, photo: Image.Image, capsys) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        photo.crop((i * 10, 0, i * 10 + 80, 80)).save(folder / f"p{i}.png")
    first, grown = tmp_path / "first.pt", tmp_path / "grown.pt"
    tiny = ["--batch", "2", "--crop", "64", "--threads", "1", "--eval-every", "0"]
    assert main(["train", str(folder), "--out", str(tmp_path / "a"), "--steps", "1", "--channels", "8",
                 "--latent-channels", "12", "--export", str(first), *tiny]) == 0
    assert main(["train", str(folder), "--out", str(tmp_path / "b"), "--init-weights", str(first), "--steps", "3",
                 "--context-groups", "4,8", "--context-channels", "8", "--export", str(grown), *tiny]) == 0
    model = load_weights(grown).model
    assert model.config.context_groups == (4, 8) and len(model.context) == 2
    codec = vaecodec.Codec(grown, precision="fp32")
    assert parse(codec.compress(photo, 50)).version == 2
    capsys.readouterr()
    for bad in ("4,9", "4,x"):
        assert main(["train", str(folder), "--out", str(tmp_path / "c"), "--init-weights", str(first), "--steps", "3",
                     "--context-groups", bad, *tiny]) == 1
        error = capsys.readouterr().err
        assert error.startswith("vaecodec: error: ") and "context-groups" in error.replace(" ", "-") and error.count("\n") == 1
