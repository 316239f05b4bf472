"""The fixed tables that select coding distributions, and the integer rule that indexes them.

The latent y is coded under zero-mean Gaussians whose standard deviation is one of 64 table
entries (CompressAI's scheme): the predicted mean only shifts the reconstruction, so a rounding
difference in it cannot desynchronise the coder; only the table index selects probabilities.

The index is computed from integers alone. Scales are handled as natural logarithms in fixed
point, in units of 1/LOG_UNIT: entry i of the table has log-scale SCALE_LOG_MIN + i*SCALE_LOG_STEP,
and a latent element with fixed-point log-scale L gets the smallest entry at or above it. Encoder
and decoder therefore agree exactly whatever their floating-point hardware.
"""

from __future__ import annotations

import math

import numpy as np

LOG_UNIT = 256  # fixed-point log-scales count in 1/256 of a natural-log unit
SCALE_LOG_MIN = -565  # exp(-565/256) = 0.110
SCALE_LOG_STEP = 32  # neighbouring entries differ by a factor exp(1/8) = 1.133
SCALE_LEVELS = 64  # the largest entry is exp((-565 + 63*32)/256) = 289
SCALE_TABLE = np.exp((SCALE_LOG_MIN + SCALE_LOG_STEP * np.arange(SCALE_LEVELS)) / LOG_UNIT)
SCALE_MIN = math.exp(SCALE_LOG_MIN / LOG_UNIT)

LATENT_RADIUS = 1023  # latent symbols are coded on [-LATENT_RADIUS, LATENT_RADIUS]
LATENT_PRECISION_BITS = 24  # counts of the latent tables sum to 2**24 (constriction's precision)
HYPER_PRECISION_BITS = 16  # counts of the hyper-latent tables sum to 2**16


def scale_index(log_scales: np.ndarray) -> np.ndarray:
    """Table index of integer fixed-point log-scales: the smallest entry >= the scale, clamped
    (uint8: an index per latent element, so the smallest type that holds SCALE_LEVELS)."""
    steps = -((SCALE_LOG_MIN - np.asarray(log_scales, dtype=np.int32)) // SCALE_LOG_STEP)  # ceiling
    return np.clip(steps, 0, SCALE_LEVELS - 1).astype(np.uint8)


def quantize_pmf(pmf: np.ndarray, precision_bits: int) -> np.ndarray:
    """Turn float probabilities (rows) into integer counts summing to 2**precision_bits.

    Every entry keeps at least one count so that each symbol stays codable.
    """
    total = 1 << precision_bits
    pmf = np.asarray(pmf, dtype=np.float64)
    pmf = pmf / pmf.sum(axis=1, keepdims=True)
    counts = np.maximum(1, np.floor(pmf * (total - pmf.shape[1])).astype(np.int64))
    # Give the remainder to each row's most probable symbol.
    deficit = total - counts.sum(axis=1)
    counts[np.arange(len(counts)), counts.argmax(axis=1)] += deficit
    return counts.astype(np.int32)


def gaussian_table_counts() -> np.ndarray:
    """Integer tables (SCALE_LEVELS, 2*LATENT_RADIUS+1) of the quantized zero-mean Gaussians.

    Built with floating point once, when weights are exported, and stored in the weights file:
    coding only ever reads the stored integers.
    """
    import torch  # export only: torch's erfc built the shipped tables
    edges = torch.arange(-LATENT_RADIUS, LATENT_RADIUS + 2, dtype=torch.float64) - 0.5
    scales = torch.from_numpy(SCALE_TABLE)[:, None]
    cdf = 0.5 * torch.special.erfc(-edges[None, :] / (scales * math.sqrt(2)))
    return quantize_pmf((cdf[:, 1:] - cdf[:, :-1]).numpy(), LATENT_PRECISION_BITS)
