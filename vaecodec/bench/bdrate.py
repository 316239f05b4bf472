"""Bjøntegaard delta rate: the average bitrate change between two rate–distortion curves.

The classic method (VCEG-M33, Bjøntegaard 2001) fits log-rate as a cubic polynomial of the quality
metric for each curve and integrates the difference over the metric interval both curves cover.
The piecewise cubic variant (PCHIP, as in later JCT-VC/JVET reports) interpolates instead of
fitting, which does not overshoot on curves with many or unevenly spaced points. Both are given
because published BD-rates use either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator

Method = Literal["cubic", "pchip"]


class BdRateError(ValueError):
    """Two curves that admit no BD-rate (too few points, no common quality range)."""


@dataclass(frozen=True)
class BdRate:
    """The rate change of a test curve against a reference, and the range it was measured over."""

    percent: float  # negative: the test codec needs fewer bits for the same quality
    low: float  # metric interval both curves cover, integrated over
    high: float
    coverage: float  # that interval's share of the shorter curve's metric range (1: full overlap)


def _log_rate_integral(rates: np.ndarray, metrics: np.ndarray, low: float, high: float, method: Method) -> float:
    if method == "cubic":
        antiderivative = np.polyint(np.polyfit(metrics, np.log(rates), 3))
        return float(np.polyval(antiderivative, high) - np.polyval(antiderivative, low))
    # PCHIP needs strictly increasing abscissae: points of equal quality share their mean log-rate.
    distinct, index = np.unique(metrics, return_inverse=True)
    log_rates = np.bincount(index, weights=np.log(rates)) / np.bincount(index)
    return float(PchipInterpolator(distinct, log_rates).integrate(low, high))


def _curve(rates: Sequence[float], metrics: Sequence[float], method: Method) -> tuple[np.ndarray, np.ndarray]:
    r, m = np.asarray(rates, dtype=np.float64), np.asarray(metrics, dtype=np.float64)
    keep = np.isfinite(r) & np.isfinite(m) & (r > 0)
    r, m = r[keep], m[keep]
    needed = 4 if method == "cubic" else 2
    if len(np.unique(m)) < needed:
        raise BdRateError(f"under {needed} points")
    return r, m


def bd_rate(reference: tuple[Sequence[float], Sequence[float]], test: tuple[Sequence[float], Sequence[float]],
            method: Method = "cubic") -> BdRate:
    """BD-rate of ``test`` against ``reference``, each given as (rates, metric values).

    The metric must grow with quality (PSNR in dB, MS-SSIM in dB); rates may be in any unit.
    """
    ref_rates, ref_metrics = _curve(*reference, method)
    test_rates, test_metrics = _curve(*test, method)
    low = max(ref_metrics.min(), test_metrics.min())
    high = min(ref_metrics.max(), test_metrics.max())
    if high <= low:
        raise BdRateError("no overlap")
    shorter = min(np.ptp(ref_metrics), np.ptp(test_metrics))
    difference = (_log_rate_integral(test_rates, test_metrics, low, high, method)
                  - _log_rate_integral(ref_rates, ref_metrics, low, high, method)) / (high - low)
    return BdRate(percent=100 * math.expm1(difference), low=float(low), high=float(high),
                  coverage=float((high - low) / shorter))
