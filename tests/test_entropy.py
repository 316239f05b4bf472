"""The entropy coder and its tables: lossless round trips, integer index rule, exact tables."""

from __future__ import annotations

import numpy as np
import pytest

from vaecodec.model.bundle import load_bundle, tune_bundle_path

from conftest import needs_torch

from vaecodec.entropy.coder import CodingTables, StreamError
from vaecodec.entropy.tables import (
    HYPER_PRECISION_BITS, LATENT_PRECISION_BITS, LATENT_RADIUS, SCALE_LEVELS, SCALE_LOG_MIN, SCALE_LOG_STEP,
    SCALE_TABLE, gaussian_table_counts, quantize_pmf, scale_index,
)


@pytest.fixture(scope="module")
def latent_tables() -> CodingTables:
    """The shipped weights' Gaussian tables (frozen at export by ``gaussian_table_counts``)."""
    return CodingTables(load_bundle(tune_bundle_path("psnr")).arrays["latent_counts"])


def test_latent_round_trip_and_rate_follows_scale(latent_tables: CodingTables) -> None:
    rng = np.random.default_rng(0)
    indexes = rng.integers(0, SCALE_LEVELS, size=(4, 8, 8))
    symbols = np.round(rng.normal(size=indexes.shape) * SCALE_TABLE[indexes]).astype(np.int64)
    symbols[0, 0, 0] = 900  # far in the tail, still codable
    data = latent_tables.encode(symbols, indexes)
    assert np.array_equal(latent_tables.decode(data, indexes), symbols)
    zeros = np.zeros(256, np.int64)
    assert len(latent_tables.encode(zeros, zeros)) < len(latent_tables.encode(zeros, zeros + 40))


def test_out_of_range_values_are_clipped(latent_tables: CodingTables) -> None:
    indexes = np.array([0, 63])
    data = latent_tables.encode(np.array([5000, -5000]), indexes)
    assert latent_tables.decode(data, indexes).tolist() == [LATENT_RADIUS, -LATENT_RADIUS]


def test_per_channel_tables_round_trip() -> None:
    rng = np.random.default_rng(1)
    tables = CodingTables(quantize_pmf(rng.random((3, 9)) + np.eye(3, 9, 4) * 5, HYPER_PRECISION_BITS))
    symbols = rng.integers(-4, 5, size=(3, 50))
    channels = np.broadcast_to(np.arange(3)[:, None], symbols.shape)
    assert np.array_equal(tables.decode(tables.encode(symbols, channels), channels), symbols)


def test_malformed_streams_are_detected(latent_tables: CodingTables) -> None:
    indexes = np.full(64, 30)
    data = latent_tables.encode(np.arange(64) - 32, indexes)
    with pytest.raises(StreamError):
        latent_tables.decode(data, indexes[:10])
    with pytest.raises(StreamError):
        latent_tables.decode(data[:-2], indexes)
    with pytest.raises(StreamError):
        latent_tables.decode(data, np.full(64, SCALE_LEVELS))


@needs_torch
def test_tables_are_complete_and_exact() -> None:
    counts = quantize_pmf(np.array([[1e-12, 0.5, 0.5 - 1e-12], [0.2, 0.3, 0.5]]), HYPER_PRECISION_BITS)
    assert counts.sum(axis=1).tolist() == [1 << HYPER_PRECISION_BITS] * 2
    assert counts.min() >= 1
    gaussians = gaussian_table_counts()
    assert gaussians.shape == (SCALE_LEVELS, 2 * LATENT_RADIUS + 1)
    assert (gaussians.sum(axis=1) == 1 << LATENT_PRECISION_BITS).all() and gaussians.min() >= 1
    assert (np.abs(gaussians.argmax(axis=1) - LATENT_RADIUS) <= 1).all()
    mirrored = gaussians[:, LATENT_RADIUS + 1 :][:, ::-1].astype(np.int64)
    assert np.abs(gaussians[:, :LATENT_RADIUS] - mirrored).sum(axis=1).max() < 1 << (LATENT_PRECISION_BITS - 10)


def test_scale_index_is_the_smallest_covering_entry() -> None:
    entry = lambda i: SCALE_LOG_MIN + i * SCALE_LOG_STEP  # noqa: E731
    log_scales = np.array([-10**6, entry(0), entry(5) - 1, entry(5), entry(5) + 1, 10**6])
    assert scale_index(log_scales).tolist() == [0, 0, 5, 5, 6, SCALE_LEVELS - 1]
    assert np.allclose(np.log(SCALE_TABLE) * 256, [entry(i) for i in range(SCALE_LEVELS)])
