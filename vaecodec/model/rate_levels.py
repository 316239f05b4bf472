"""The quality -> rate level rule: the one place that defines it (the format spec cites it).

A file's header holds the quality as an integer, hundredths of a quality point (0..QUALITY_STEPS).
That integer is the truth: the quality a user asks for is converted to it once, at the edge
(``quality_units``), and everything after is derived from it, exactly.

- The rate level, in 1/LEVEL_UNIT of a level: ``level_units`` maps qualities 0..100 linearly onto
  the weights' lowest level (hundredths of a level, below 0 for rates under the lowest lambda's)
  up to the highest, ``levels - 1``; integer arithmetic, rounding down.
- Per-level tables (the gains) are read at a level linearly between the trained levels k and k+1
  around it, k = clamp(floor(level), 0, levels - 2), so levels below 0 continue the first segment.
  Forms of that one rule: ``blend_exact`` on integer tables at an integer level (what selects
  coding tables: it must agree bit for bit on every machine), ``blend`` on float torch tables at
  float levels (training's continuous levels) and ``blend_one``, the same float32 arithmetic in
  numpy at one level (the coder's float gains), where the coder's float level is
  ``level_units / LEVEL_UNIT``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vaecodec.errors import VaecodecError

import numpy as np

if TYPE_CHECKING:  # the tensors come from callers: the header's rules load without torch
    import torch

QUALITY_STEPS = 10000  # the header's quality: hundredths of a point, 0..100.00
LEVEL_UNIT = 10000  # rate levels are computed in 1/10000 of a level


def quality_units(quality: float) -> int:
    """The header's integer for a quality from 0 to 100 (fractions are kept to hundredths)."""
    if isinstance(quality, bool) or not isinstance(quality, (int, float)) or not 0 <= quality <= 100:
        raise VaecodecError(f"quality must be a number from 0 to 100, got {quality!r}")
    return round(round(float(quality), 2) * 100)


def level_units(quality: int, levels: int, lowest_level_hundredths: int) -> int:
    """The rate level (in 1/LEVEL_UNIT) of a header quality (0..QUALITY_STEPS) for weights with
    ``levels`` trained levels whose quality 0 sits at ``lowest_level_hundredths``."""
    lowest = lowest_level_hundredths * (LEVEL_UNIT // 100)
    return lowest + quality * ((levels - 1) * LEVEL_UNIT - lowest) // QUALITY_STEPS


def level_of(units: int) -> float:
    """The float rate level of an integer one."""
    return units / LEVEL_UNIT


def blend(table: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Rows of a float per-level table (levels, ...) at continuous levels (B,) -> (B, ...)."""
    low = level.floor().clamp(0, table.shape[0] - 2).long()
    frac = (level - low)[:, None]
    return table[low] * (1 - frac) + table[low + 1] * frac


def blend_one(table: np.ndarray, level: np.float32) -> np.ndarray:
    """``blend`` at one float32 level, in numpy: the row of a float32 per-level table (levels, M),
    with the same float32 operations (what the coder's float gains are read with)."""
    low = min(max(int(np.floor(level)), 0), len(table) - 2)
    fraction = np.float32(level - np.float32(low))
    return table[low] * (np.float32(1) - fraction) + table[low + 1] * fraction


def blend_exact(table: np.ndarray, units: int) -> np.ndarray:
    """The row of an integer per-level table (levels, M) at an integer level (1/LEVEL_UNIT),
    rounding down."""
    low = min(max(units // LEVEL_UNIT, 0), len(table) - 2)
    fraction = units - low * LEVEL_UNIT
    step = table[low + 1] - table[low]
    return table[low] + step * fraction // LEVEL_UNIT  # integer arrays: floor division
