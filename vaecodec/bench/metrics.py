"""Quality metrics of a decoded image against its original, all on 8-bit RGB arrays (HxWx3 uint8).

PSNR is the one validation already uses; SSIM is scikit-image's with the settings of Wang et al.
(2004), so figures compare with papers; MS-SSIM follows Wang, Simoncelli and Bovik (2003) the way
CompressAI measures it (per RGB channel, then averaged; it agrees with pytorch-msssim to about 1e-5
on Kodak), so our curves sit on the same axis as the published anchors.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d
from skimage.metrics import structural_similarity

from vaecodec.errors import VaecodecError
from vaecodec.metrics import psnr

__all__ = ["psnr", "ssim", "ms_ssim", "ms_ssim_db", "MS_SSIM_WEIGHTS"]

# Exponents of the five scales, finest first, as calibrated by Wang et al. (2003).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WINDOW = 11
_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03
_DATA_RANGE = 255.0


def ssim(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Mean SSIM over the RGB channels: 11x11 Gaussian window (sigma 1.5), population statistics."""
    return float(structural_similarity(
        reference, decoded, channel_axis=-1, data_range=_DATA_RANGE,
        gaussian_weights=True, sigma=_SIGMA, use_sample_covariance=False,
    ))


def _gaussian_window() -> np.ndarray:
    taps = np.arange(_WINDOW) - (_WINDOW - 1) / 2
    kernel = np.exp(-(taps**2) / (2 * _SIGMA**2))
    return kernel / kernel.sum()


def _filter(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable filter of HxWxC planes, kept only where the window lies inside the image."""
    border = len(kernel) // 2
    filtered = correlate1d(correlate1d(x, kernel, axis=0), kernel, axis=1)
    return filtered[border:-border, border:-border]


def _ssim_terms(x: np.ndarray, y: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel means of the SSIM map and of its contrast-structure part."""
    c1, c2 = (_K1 * _DATA_RANGE) ** 2, (_K2 * _DATA_RANGE) ** 2
    mu_x, mu_y = _filter(x, kernel), _filter(y, kernel)
    var_x = _filter(x * x, kernel) - mu_x**2
    var_y = _filter(y * y, kernel) - mu_y**2
    cov = _filter(x * y, kernel) - mu_x * mu_y
    contrast_structure = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * contrast_structure).mean(axis=(0, 1)), contrast_structure.mean(axis=(0, 1))


def _halve(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling (an odd last row or column is dropped)."""
    height, width = x.shape[0] // 2, x.shape[1] // 2
    return x[: 2 * height, : 2 * width].reshape(height, 2, width, 2, -1).mean(axis=(1, 3))


def ms_ssim(reference: np.ndarray, decoded: np.ndarray, weights: tuple[float, ...] = MS_SSIM_WEIGHTS) -> float:
    """Multi-scale SSIM in [0, 1] (1: identical), averaged over the RGB channels.

    Contrast-structure at every scale, luminance only at the coarsest; 2x2 average pooling between
    scales. Images too small for all scales (the coarsest must still hold an 11x11 window, i.e. 176
    pixels on the short side for five) use the scales that fit, their weights renormalised.
    """
    if reference.shape != decoded.shape:
        raise VaecodecError(f"shapes differ: {reference.shape} and {decoded.shape}")
    short_side = min(reference.shape[:2])
    if short_side < _WINDOW:
        raise VaecodecError(f"MS-SSIM needs images of at least {_WINDOW}x{_WINDOW} pixels, got {reference.shape[:2]}")
    scales = min(len(weights), int(math.log2(short_side / _WINDOW)) + 1)
    exponents = np.array(weights[:scales]) / sum(weights[:scales])
    x, y = reference.astype(np.float64), decoded.astype(np.float64)
    kernel = _gaussian_window()
    factors = []
    for scale in range(scales):
        if scale:
            x, y = _halve(x), _halve(y)
        full, contrast_structure = _ssim_terms(x, y, kernel)
        factors.append(full if scale == scales - 1 else contrast_structure)
    per_channel = np.prod(np.clip(factors, 0, None) ** exponents[:, None], axis=0)
    return float(per_channel.mean())


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a decibel scale, -10 log10(1 - MS-SSIM): the axis papers plot and fit on."""
    return float(-10 * math.log10(1 - value)) if value < 1 else math.inf
