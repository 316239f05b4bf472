"""Fixed tables that select coding distributions, shared by training and coding.

The latent y is coded under zero-mean Gaussians whose scale is one of ``SCALE_TABLE``'s entries
(CompressAI's scheme): the predicted mean only shifts the reconstruction, so a rounding difference
in it cannot desynchronise the coder; only the table index selects probabilities.
"""

from __future__ import annotations

import math

import numpy as np
import torch

SCALE_MIN = 0.11
SCALE_MAX = 256.0
SCALE_LEVELS = 64
SCALE_TABLE = np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS))

# Precision of the frozen integer probability tables of the hyper-latent.
PMF_PRECISION_BITS = 16


def scale_indexes(scales: torch.Tensor) -> torch.Tensor:
    """Index of the smallest table scale that is at least ``scales`` (clamped to the table)."""
    table = torch.as_tensor(SCALE_TABLE[:-1], dtype=scales.dtype, device=scales.device)
    return torch.bucketize(scales.contiguous(), table).to(torch.int64)


def quantize_pmf(pmf: np.ndarray) -> np.ndarray:
    """Turn float probabilities (rows) into integer counts summing to 2**PMF_PRECISION_BITS.

    Every entry keeps at least one count so that each symbol stays codable.
    """
    total = 1 << PMF_PRECISION_BITS
    pmf = np.asarray(pmf, dtype=np.float64)
    pmf = pmf / pmf.sum(axis=1, keepdims=True)
    counts = np.maximum(1, np.floor(pmf * (total - pmf.shape[1])).astype(np.int64))
    # Give the remainder to each row's most probable symbol.
    deficit = total - counts.sum(axis=1)
    counts[np.arange(len(counts)), counts.argmax(axis=1)] += deficit
    return counts.astype(np.int32)
