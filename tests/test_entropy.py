"""The entropy coder: lossless round trips of both streams and the integer tables behind them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaecodec.entropy.coder import StreamError, decode_hyper, decode_latent, encode_hyper, encode_latent
from vaecodec.entropy.tables import PMF_PRECISION_BITS, SCALE_TABLE, quantize_pmf, scale_indexes


def test_latent_round_trip_and_rate_follows_scale() -> None:
    rng = np.random.default_rng(0)
    indexes = rng.integers(0, len(SCALE_TABLE), size=(4, 8, 8))
    symbols = np.round(rng.normal(size=indexes.shape) * SCALE_TABLE[indexes]).astype(np.int64)
    symbols[0, 0, 0] = 900  # far in the tail, still codable
    data = encode_latent(symbols, indexes)
    assert np.array_equal(decode_latent(data, indexes), symbols)
    narrow = encode_latent(np.zeros((256,), np.int64), np.zeros(256, np.int64))
    wide = encode_latent(np.zeros((256,), np.int64), np.full(256, 40))
    assert len(narrow) < len(wide)


def test_hyper_round_trip_with_per_channel_tables() -> None:
    rng = np.random.default_rng(1)
    pmf = rng.random((3, 9)) + np.eye(3, 9, 4) * 5
    counts = quantize_pmf(pmf)
    symbols = rng.integers(-4, 5, size=(3, 50))
    assert np.array_equal(decode_hyper(encode_hyper(symbols, counts), counts, 50), symbols)


def test_decoding_with_the_wrong_count_is_detected() -> None:
    indexes = np.full(64, 30)
    data = encode_latent(np.arange(64) - 32, indexes)
    with pytest.raises(StreamError):
        decode_latent(data, indexes[:10])
    with pytest.raises(StreamError):
        decode_latent(data[:-2], indexes)


def test_quantized_tables_are_complete_and_exact() -> None:
    counts = quantize_pmf(np.array([[1e-12, 0.5, 0.5 - 1e-12], [0.2, 0.3, 0.5]]))
    assert counts.sum(axis=1).tolist() == [1 << PMF_PRECISION_BITS] * 2
    assert counts.min() >= 1


def test_scale_indexes_pick_the_smallest_covering_scale() -> None:
    scales = torch.tensor([0.0, SCALE_TABLE[0], SCALE_TABLE[5] * 0.999, SCALE_TABLE[5], 1e9], dtype=torch.float64)
    assert scale_indexes(scales).tolist() == [0, 0, 5, 5, len(SCALE_TABLE) - 1]
