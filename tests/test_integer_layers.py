"""The integer layers' fast path (Winograd correlations, ``vaecodec.model.fixed_point``) against
the plain one (a matrix product per kernel tap): the same integers, bit for bit, at the activation
limits, at any size and thread count. numpy only: this runs without torch too."""

from __future__ import annotations

import numpy as np
import pytest

from vaecodec.model.fixed_point import ACT_LIMIT, CHUNK_TILES, OUTPUT_BLOCK, ConvSpec, IntegerConv

LAYERS = [
    ((72, 40, 3, 3), ConvSpec(1, 1)),  # the hyper-synthesis's last layer, smaller
    ((40, 72, 5, 5), ConvSpec(2, 2, 1, True)),  # its transposed layers: phases of 3x3, 3x2, 2x3, 2x2
    ((24, 30, 3, 3), ConvSpec(2, 1, 1, True)),  # phases of 2x2, 2x1, 1x2, 1x1
    ((30, 24, 4, 4), ConvSpec(2, 1, 0, True)),
    ((20, 30, 2, 2), ConvSpec(1, 0)),
    ((30, 20, 3, 3), ConvSpec(1, 0)),
]
SIZES = [(1, 1), (2, 3), (5, 7), (13, 4), (40, 2 * CHUNK_TILES // 20 + 3)]  # the last: several chunks


def layer_and_inputs(shape: tuple[int, ...], spec: ConvSpec, seed: int) -> tuple[IntegerConv, np.random.Generator]:
    generator = np.random.default_rng(seed)
    outputs = shape[1] if spec.transposed else shape[0]
    return IntegerConv(np.round(generator.normal(0, 3000, shape)), np.round(generator.normal(0, 1e7, outputs)),
                       spec), generator


def tap_by_tap(layer: IntegerConv, x: np.ndarray) -> np.ndarray:
    plain = IntegerConv(layer.weight, layer.bias, layer.spec)
    plain.phases = []
    return plain(x)


@pytest.mark.parametrize(("shape", "spec"), LAYERS)
def test_winograd_equals_the_plain_sums(shape: tuple[int, ...], spec: ConvSpec) -> None:
    layer, generator = layer_and_inputs(shape, spec, 0)
    assert layer.phases  # these layers take the fast path
    channels = shape[0] if spec.transposed else shape[1]
    for height, width in SIZES:
        if min(layer.output_size(height, width)) < 1:
            continue
        extremes = generator.choice([-ACT_LIMIT, ACT_LIMIT], (1, channels, height, width)).astype(np.float64)
        typical = np.round(generator.normal(0, 5000, (1, channels, height, width)))
        for x in (extremes, typical):
            expected = tap_by_tap(layer, x)
            for workers in (1, 2, 3):
                assert np.array_equal(layer(x, workers), expected)


def test_more_output_channels_than_a_block() -> None:
    layer, generator = layer_and_inputs((2 * OUTPUT_BLOCK + 5, 16, 3, 3), ConvSpec(1, 1), 1)
    x = np.round(generator.normal(0, 5000, (1, 16, 9, 11)))
    assert np.array_equal(layer(x, 2), tap_by_tap(layer, x))


def test_weights_too_large_for_winograd_take_the_plain_sums() -> None:
    """Weights whose transformed sums could pass 2**53 (but not their plain ones) run tap by tap."""
    shape = (8, 6, 3, 3)
    largest = (2**53 - 1) // (ACT_LIMIT * shape[1] * 9)  # every plain sum stays below 2**53
    weight = np.full(shape, float(largest))
    layer = IntegerConv(weight, np.zeros(8), ConvSpec(1, 1))
    assert not layer.phases
    x = np.full((1, shape[1], 5, 6), float(ACT_LIMIT))
    assert np.array_equal(layer(x), tap_by_tap(layer, x))
    assert layer(x).max() == ACT_LIMIT  # clamped, as the sums are huge
