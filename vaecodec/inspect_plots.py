"""Figures of an ``Inspection`` (``vaecodec.inspection``) as PNG bytes, drawn with matplotlib.

Kept apart from the numbers so that ``vaecodec.inspect`` works where matplotlib (the ``bench``
extra) is not installed; only the command line's pictures need it. Figures are made without
pyplot, so nothing global (a backend, open windows) changes in the caller's process.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, SymLogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from PIL import Image

from vaecodec.inspection import BLOCK, Inspection

DPI = 100
HEAT_ALPHA = 0.6  # of the heat maps over the (greyed) decoded image


def bit_map(inspection: Inspection, title: str, original_name: str = "the original") -> bytes:
    """The bits per pixel of each 16x16 block over the decoded image, and beside it, when the
    inspection has an original, the PSNR of each block."""
    panels = 1 if inspection.block_psnr is None else 2
    width, height = inspection.width, inspection.height
    side = 5.0 * min(1.0, height / width) + 1.2
    figure = Figure(figsize=(5.6 * panels, side), dpi=DPI, layout="constrained")
    figure.suptitle(title)
    axes = figure.subplots(1, panels, squeeze=False)[0]
    _heat(figure, axes[0], inspection, inspection.block_bpp, "magma", "bits per pixel (16x16 blocks)")
    axes[0].set_title(f"where the bits go: {8 * inspection.file_bytes / (width * height):.3f} bpp in all", fontsize=10)
    if inspection.block_psnr is not None:
        _heat(figure, axes[1], inspection, inspection.block_psnr, "viridis", "PSNR (dB, 16x16 blocks)")
        axes[1].set_title(f"fidelity against {original_name}: {inspection.psnr:.2f} dB", fontsize=10)
    return _png(figure)


def channels(inspection: Inspection, title: str, count: int = 8) -> bytes:
    """The costliest latent channels: their symbols, and the mean and scale the hyperprior
    predicted for them, one row per channel, a colour scale per column."""
    chosen = inspection.costliest_channels(count)
    file_bits = 8 * inspection.file_bytes
    rows, columns = -(-inspection.height // BLOCK), -(-inspection.width // BLOCK)  # the latent over the image
    figure = Figure(figsize=(8.4, 1.4 + len(chosen) * 2.4 * rows / columns), dpi=DPI, layout="constrained")
    figure.suptitle(title)
    axes = figure.subplots(len(chosen), 3, squeeze=False)
    symbols, means, scales = (values[chosen, :rows, :columns] for values in
                              (inspection.symbols, inspection.means, inspection.scales))
    shown = [
        (symbols, "RdBu_r", _signed_norm(symbols), "symbol s (steps)"),
        (means, "PuOr_r", _signed_norm(means), "mean \N{GREEK SMALL LETTER MU} (steps)"),
        (scales, "viridis", LogNorm(float(scales.min()), float(scales.max()) * 1.0001),
         "scale \N{GREEK SMALL LETTER SIGMA} (steps)"),
    ]
    for column, (values, cmap, norm, label) in enumerate(shown):
        for row, channel in enumerate(chosen):
            ax = axes[row, column]
            image = ax.imshow(values[row], cmap=cmap, norm=norm, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                share = inspection.channel_bits[channel] / file_bits
                ax.set_ylabel(f"channel {channel}\n{100 * share:.1f} % of file", fontsize=8)
        bar = figure.colorbar(image, ax=axes[:, column], location="bottom", shrink=0.9, aspect=25)
        bar.set_label(label, fontsize=9)
        bar.ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    return _png(figure)


def channel_shares(inspection: Inspection, title: str, highlighted: int = 8) -> bytes:
    """Each latent channel's share of the file's bits as a bar, the costliest highlighted, and
    the hyper-latent's share as a bar of its own."""
    file_bits = 8 * inspection.file_bytes
    shares = 100 * inspection.channel_bits / file_bits
    hyper = 100 * inspection.hyper_bytes / inspection.file_bytes
    figure = Figure(figsize=(9.0, 3.4), dpi=DPI, layout="constrained")
    figure.suptitle(title)
    ax = figure.subplots()
    colours = np.full(len(shares), "#8c8c8c", dtype=object)
    colours[inspection.costliest_channels(highlighted)] = "#c0392b"
    ax.bar(np.arange(len(shares)), shares, width=1.0, color=list(colours),
           label=f"latent channel (costliest {highlighted} in red)")
    ax.bar([len(shares) + 2], [hyper], width=2.0, color="#2c7fb8", label=f"hyper-latent ({hyper:.1f} %)")
    ax.set_xlim(-1, len(shares) + 4)
    ax.set_xlabel("latent channel")
    ax.set_ylabel("share of the file's bits (%)")
    ax.legend(fontsize=8, frameon=False)
    return _png(figure)


def _signed_norm(values: np.ndarray) -> SymLogNorm:
    """Colours symmetric about 0, linear within one step and logarithmic beyond, so that the
    many small values show beside the few large ones on one colour scale."""
    reach = max(2.0, float(np.abs(values).max()))
    return SymLogNorm(linthresh=1.0, vmin=-reach, vmax=reach, base=10)


def _heat(figure: Figure, ax: Axes, inspection: Inspection, values: np.ndarray, cmap: str, label: str) -> None:
    """``values`` per 16x16 block over the greyed decoded image, with a colour bar."""
    grey = inspection.image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    ax.imshow(grey, cmap="gray", vmin=0, vmax=255, interpolation="bilinear")
    rows, columns = values.shape
    heat = ax.imshow(values, cmap=cmap, alpha=HEAT_ALPHA, interpolation="nearest",
                     extent=(0, columns * BLOCK, rows * BLOCK, 0))
    ax.set_xlim(0, inspection.width)
    ax.set_ylim(inspection.height, 0)
    ax.set_xlabel("x (pixels)")
    ax.set_ylabel("y (pixels)")
    figure.colorbar(heat, ax=ax, shrink=0.85).set_label(label)


def _png(figure: Figure) -> bytes:
    """The figure as an RGB PNG (matplotlib's own has an alpha channel, opaque here: a quarter more bytes)."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]).save(buffer, format="png")
    return buffer.getvalue()
