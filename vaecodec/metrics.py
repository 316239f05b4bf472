"""PSNR, the fidelity measure that validation, rate control and the bench share."""

from __future__ import annotations

import numpy as np


def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB of 8-bit images (all channels together)."""
    mse = np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse > 0 else float("inf")
