"""Running a convolutional network over a large input in overlapping tiles, in bounded memory.

Each tile is extended by a margin wider than the network's receptive field, run on its own, and
only its centre is kept. Convolutions are translation-equivariant (tiles start on multiples of
the network's total stride), so the stitched output is the whole-image output: exactly for the
integer hyper-synthesis, up to floating-point rounding for the float networks, and without seams.
Inputs no larger than one tile run whole. Inputs and outputs are numpy arrays: every engine's
networks (``vaecodec.engine``) and the integer networks take and give them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from fractions import Fraction
from typing import Callable

import numpy as np


def tile_boxes(height: int, width: int, tile: int | tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The tiles of an input, (top, left, bottom, right) in row-major order: they depend only on its
    size (a side, or rows and columns, per tile), so anything summed over them in this order is too."""
    tile_rows, tile_cols = (tile, tile) if isinstance(tile, int) else tile
    return [(top, left, min(top + tile_rows, height), min(left + tile_cols, width))
            for top in range(0, height, tile_rows) for left in range(0, width, tile_cols)]


def map_tiles(
    network: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    scale: Fraction,
    tile: int | tuple[int, int],
    margin: int,
    finish: Callable[[np.ndarray], np.ndarray] = lambda piece: piece,
    workers: int = 1,
    padded_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """``finish(network(x))`` for an (N, C, H, W) input, computed tile by tile.

    ``scale`` is the output size over the input size; ``tile`` (a side, or rows and columns) and
    ``margin`` are in input pixels and must be multiples of the network's total stride (the
    denominator of ``scale``). ``finish`` (elementwise, e.g. a conversion to 8 bits) is applied per
    tile, so only its result is held whole. ``workers`` threads run tiles at once; the tiles, and so
    the result, depend only on the input's size, never on ``workers``. With ``padded_size`` (rows,
    columns), the input is taken as extended to that size by repeating its last row and column,
    tile by tile, so that no padded copy of a large input is ever held whole.
    """
    height, width = padded_size or x.shape[-2:]
    boxes = tile_boxes(height, width, tile)
    if len(boxes) == 1:
        return finish(network(_region(x, 0, height, 0, width)))

    def run(box: tuple[int, int, int, int]) -> np.ndarray:
        top, left, bottom, right = box
        top_in, left_in = max(top - margin, 0), max(left - margin, 0)
        piece = network(_region(x, top_in, min(bottom + margin, height), left_in, min(right + margin, width)))
        rows = slice(int((top - top_in) * scale), int((bottom - top_in) * scale))
        cols = slice(int((left - left_in) * scale), int((right - left_in) * scale))
        return finish(piece[..., rows, cols])

    out = None
    # One worker runs the tiles here, in this thread (another thread would hold its own allocations).
    with ThreadPoolExecutor(min(workers, len(boxes))) if workers > 1 else nullcontext() as pool:
        for (top, left, bottom, right), piece in zip(boxes, pool.map(run, boxes) if pool else map(run, boxes)):
            if out is None:
                out = np.empty((*piece.shape[:2], int(height * scale), int(width * scale)), dtype=piece.dtype)
            out[..., int(top * scale) : int(bottom * scale), int(left * scale) : int(right * scale)] = piece
    return out


def _region(x: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Rows top..bottom and columns left..right of ``x``, its last row and column repeated beyond it."""
    rows, cols = x.shape[-2:]
    if bottom <= rows and right <= cols:
        return x[..., top:bottom, left:right]
    row_index = np.minimum(np.arange(top, bottom), rows - 1)
    col_index = np.minimum(np.arange(left, right), cols - 1)
    return x[..., row_index, :][..., col_index]
