"""The mean-scale hyperprior's latent coder: the hyper-latent z and the latent y to streams and back.

It owns everything between the float transforms and the bytes, symmetrically for both directions:

- the hyper stream: z, offset per channel, under the weights' frozen per-channel tables;
- the entropy parameters, in exact integer arithmetic (``vaecodec.model.fixed_point``): from z,
  the hyper-synthesis gives every latent element a mean and a fixed-point log-scale; the rate
  level's integer log-gains (``vaecodec.model.rate_levels.blend_exact``) are added and the sum
  picks a Gaussian table (``vaecodec.entropy.tables.scale_index``);
- quantization with the float gains: the symbol is round(y * g - mu * g), the decoded latent
  (s + mu * g) * g', g and g' the model's gains at the float level;
- the latent stream: the symbols under their Gaussian tables.

Encoding is split in two (``prepare``, then ``encode`` per quality) so that rate control reuses the
quality-independent half. Everything here is numpy on the CPU, built from a weights bundle
(``vaecodec.model.bundle``): coding needs no torch, whichever engine runs the float transforms.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np

from vaecodec.entropy.coder import CodingTables, SegmentReader
from vaecodec.entropy.tables import LOG_UNIT, SCALE_TABLE, scale_index
from vaecodec.model.config import STRIDE
from vaecodec.model.fixed_point import ACT_BITS, IntegerSequential, LayerData, log_scales, to_fixed
from vaecodec.model.rate_levels import blend_exact, blend_one, level_of
from vaecodec.model.tiling import map_tiles
from vaecodec.threads import threads_for

if TYPE_CHECKING:  # export only (torch)
    from vaecodec.model.bundle import Bundle
    from vaecodec.model.hyperprior import HyperpriorModel

TILE, TILE_MARGIN = 32, 3  # hyper-latent pixels per tile of the integer network (bounds its memory), overlap
# Hyper-latent values coded per channel: integers within this many of the channel's mode.
_MAX_TABLE_RADIUS = 255
_TAIL_MASS = 1e-7
_SCALES = SCALE_TABLE.astype(np.float32)


class IntegerEntropyParameters:
    """Means and scale-table indexes of the latent from the integer hyper-latent, exactly.

    Built from a model's hyper-synthesis (``h_s``: convolutions and LeakyReLUs, as plain layer
    data), its per-level log-gains and the frozen log-scale table.
    """

    def __init__(self, h_s: list[LayerData], log_gain: np.ndarray, log_scale_table: np.ndarray) -> None:
        self.network = IntegerSequential(h_s)
        # Per-level, per-channel log-gains in units of 1/LOG_UNIT (the stored values scale exactly).
        self.log_gain = np.round(np.asarray(log_gain, dtype=np.float64) * LOG_UNIT).astype(np.int64)
        self.log_scale_table = np.asarray(log_scale_table, dtype=np.int32)

    def __call__(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(float32 means, int32 fixed-point log-scales), both before gains, for an integer z (1, N, h, w)."""

        def finish(x: np.ndarray) -> np.ndarray:
            # Per tile, so that no float64 activation of the whole latent is ever held: both halves
            # as float32, exact (the means are multiples of 2**-ACT_BITS well inside float32's
            # range of exact values, the log-scales integers of under 2**24).
            means, raw_scales = np.split(x, 2, axis=1)
            return np.concatenate([means / (1 << ACT_BITS), log_scales(raw_scales, self.log_scale_table)],
                                  axis=1, dtype=np.float32)

        # The channels on the codec's threads, but for large images (as the strips of the transforms)
        pixels = z.shape[-2] * z.shape[-1] * STRIDE**2  # the image's, padded: a hyper-latent element per stride²
        network = functools.partial(self.network, workers=threads_for(pixels))
        x = map_tiles(network, to_fixed(z), Fraction(4), TILE, TILE_MARGIN, finish=finish)
        half = x.shape[1] // 2
        return x[:, :half], x[:, half:].astype(np.int32)

    def indexes(self, log_scales: np.ndarray, level_units: int) -> np.ndarray:
        """Scale-table indexes of the gained scales at an integer rate level."""
        gains = blend_exact(self.log_gain, level_units).astype(np.int32)  # a few thousand at most
        return scale_index(log_scales + gains[None, :, None, None])


def freeze_hyper_tables(model: HyperpriorModel) -> tuple[np.ndarray, np.ndarray]:
    """Integer coding tables of the hyper-latent from the learned density, built once at export:
    (offsets (C,), counts (C, 2R+1)), R the smallest radius around every channel's mode that
    leaves out less than _TAIL_MASS of its mass."""
    from vaecodec.entropy.tables import HYPER_PRECISION_BITS, quantize_pmf

    grid = model.hyper_density.integer_pmf(_MAX_TABLE_RADIUS * 2).numpy()
    modes = grid.argmax(axis=1)
    cumulative = np.cumsum(grid, axis=1)
    radius = 1
    for c, mode in enumerate(modes):
        for r in range(radius, _MAX_TABLE_RADIUS + 1):
            low, high = max(mode - r, 0), min(mode + r, grid.shape[1] - 1)
            inside = cumulative[c, high] - (cumulative[c, low - 1] if low > 0 else 0.0)
            if inside >= 1 - _TAIL_MASS * cumulative[c, -1] or r == _MAX_TABLE_RADIUS:
                radius = max(radius, r)
                break
    window = np.arange(-radius, radius + 1)
    index = np.clip(modes[:, None] + window[None, :], 0, grid.shape[1] - 1)
    pmf = np.take_along_axis(grid, index, axis=1) + 1e-12
    offsets = (modes - _MAX_TABLE_RADIUS * 2).astype(np.int32)
    return offsets, quantize_pmf(pmf, HYPER_PRECISION_BITS)


@dataclass
class PreparedLatent:
    """The quality-independent half of encoding: the latent, the hyper stream, the entropy parameters."""

    y: np.ndarray  # the latent before gains (1, M, h, w) float32
    hyper_stream: bytes
    means: np.ndarray  # latent means before gains, exact, float32
    log_scales: np.ndarray  # fixed-point log-scales before gains


@dataclass
class GainedLatent:
    """A prepared latent as the coder sees it at one rate level, for choosing its symbols by
    optimisation (``vaecodec.latent.sga``): the symbols are round(residual); the decoder's latent is
    (symbols + offset) * inverse_gain; each symbol is coded under a zero-mean Gaussian of ``scales``
    (its table's scale). All (1, M, h, w) float32 but the gains (1, M, 1, 1): numpy arrays from the
    coder, torch tensors on the search's device inside the effort (``TorchTransforms._tensors``).

    The offsets and scales are those of the plain symbols, round(residual). Where other symbols
    would change them (a context coder: earlier groups' symbols set later groups' means and
    scales), ``follow`` gives the latent as the coder codes those symbols instead."""

    residual: np.ndarray  # y * g - mu * g
    offset: np.ndarray  # mu * g
    gain: np.ndarray
    inverse_gain: np.ndarray
    scales: np.ndarray
    follow: Callable[[np.ndarray], GainedLatent] | None = None

    @staticmethod
    def at(y: np.ndarray, means: np.ndarray, indexes: np.ndarray, gain: np.ndarray,
           inverse_gain: np.ndarray) -> GainedLatent:
        """The latent y with means mu (before gains) and table indexes, at a level's gains."""
        offset = means * gain
        return GainedLatent(y * gain - offset, offset, gain, inverse_gain, _SCALES[indexes])

    def for_symbols(self, symbols: np.ndarray) -> GainedLatent:
        """The latent as the coder codes ``symbols``: its offsets and scales for them."""
        return self if self.follow is None else self.follow(symbols)


class HyperpriorCoder:
    """The latent coder of ``HyperpriorModel`` weights (kind "hyperprior"); see the module docstring."""

    kind = "hyperprior"
    format_version = 1  # of the files it writes (``vaecodec.format.container``)
    frozen_table_names: tuple[str, ...] = ("z_offsets", "z_counts", "latent_counts", "log_scale_table")

    @staticmethod
    def frozen_tables(model: HyperpriorModel) -> dict[str, np.ndarray]:
        """The integer tables this coder reads from a weights file, built from the model at export."""
        from vaecodec.entropy.tables import gaussian_table_counts
        from vaecodec.model.fixed_point import build_log_scale_table

        offsets, counts = freeze_hyper_tables(model)
        return {"z_offsets": offsets, "z_counts": counts, "latent_counts": gaussian_table_counts(),
                "log_scale_table": build_log_scale_table()}

    def __init__(self, bundle: Bundle) -> None:
        arrays = bundle.arrays
        self.log_gain = np.asarray(arrays["log_gain"], dtype=np.float32)
        self.log_inverse_gain = np.asarray(arrays["log_inverse_gain"], dtype=np.float32)
        self.z_offsets = np.asarray(arrays["z_offsets"], dtype=np.int64)
        self.hyper_tables = CodingTables(arrays["z_counts"])
        self.latent_tables = CodingTables(arrays["latent_counts"])
        self.entropy_parameters = IntegerEntropyParameters(bundle.networks["h_s"], self.log_gain,
                                                           arrays["log_scale_table"])

    def hyper_shape(self, latent_height: int, latent_width: int) -> tuple[int, int, int, int]:
        return 1, len(self.z_offsets), latent_height // 4, latent_width // 4

    def _hyper_table_indexes(self, shape: tuple[int, ...]) -> np.ndarray:
        """Each hyper-latent element is coded under its channel's table."""
        return np.broadcast_to(np.arange(shape[1])[None, :, None, None], tuple(shape))

    def gains(self, level_units: int) -> tuple[np.ndarray, np.ndarray]:
        """The float gain and inverse gain (1, M, 1, 1) at an integer rate level: the quantization's
        step sizes (a rounding difference here moves pixels, never the coding tables)."""
        level = np.float32(level_of(level_units))
        return tuple(np.exp(blend_one(table, level))[None, :, None, None]  # type: ignore[return-value]
                     for table in (self.log_gain, self.log_inverse_gain))

    def prepare(self, y: np.ndarray, z: np.ndarray) -> PreparedLatent:
        """The hyper stream and the entropy parameters of a latent y and its rounded hyper-latent z."""
        radius = self.hyper_tables.radius
        offsets = self.z_offsets[None, :, None, None]
        z_symbols = np.clip(np.asarray(z, dtype=np.int64) - offsets, -radius, radius)
        hyper_stream = self.hyper_tables.encode(z_symbols, self._hyper_table_indexes(z.shape))
        means, log_scales = self.entropy_parameters(z_symbols + offsets)
        return PreparedLatent(y, hyper_stream, means, log_scales)

    def encode(self, prepared: PreparedLatent, level_units: int) -> bytes:
        """The latent stream at an integer rate level."""
        gain, _ = self.gains(level_units)
        symbols = prepared.y * gain
        symbols -= prepared.means * gain  # in place: the same float32 operations, one latent-sized copy less
        indexes = self.entropy_parameters.indexes(prepared.log_scales, level_units)
        return self.latent_tables.encode(np.round(symbols, out=symbols), indexes)

    def gained(self, prepared: PreparedLatent, level_units: int) -> GainedLatent:
        """The latent at an integer rate level as :meth:`encode` rounds and codes it."""
        gain, inverse_gain = self.gains(level_units)
        indexes = self.entropy_parameters.indexes(prepared.log_scales, level_units)
        return GainedLatent.at(prepared.y, prepared.means, indexes, gain, inverse_gain)

    @staticmethod
    def with_symbols(prepared: PreparedLatent, gained: GainedLatent, symbols: np.ndarray) -> PreparedLatent:
        """The prepared latent that :meth:`encode` codes, at ``gained``'s level, as these integer
        symbols (a latent within float rounding of each symbol's centre, so it rounds to it)."""
        return replace(prepared, y=(symbols + gained.for_symbols(symbols).offset) / gained.gain)

    def decode(self, hyper_stream: bytes, latent_stream: bytes, latent_size: tuple[int, int],
               level_units: int) -> np.ndarray:
        """The decoded latent (1, M, h, w) float32, from the two streams."""
        _, means, indexes, symbols = self._read_streams(hyper_stream, latent_stream, latent_size, level_units)
        del indexes  # as large as the latent: freed before the reconstruction's arrays
        return self._reconstruct(symbols, means, level_units)

    def symbol_information(self, hyper_stream: bytes, latent_stream: bytes, latent_size: tuple[int, int],
                           level_units: int) -> dict[str, np.ndarray]:
        """What :meth:`decode` reads, with the bits each symbol cost under the table it was coded
        with (``CodingTables.information``): "z" (1, N, h/4, w/4) and its "hyper_bits"; the latent
        "symbols" (1, M, h, w), their "means" before gains, "scale_indexes" and "latent_bits"; and
        "gains" (M,), the float gains of the level (symbols count steps of 1/gain)."""
        read = self._read_streams(hyper_stream, latent_stream, latent_size, level_units)
        hyper_indexes = self._hyper_table_indexes(read.z_symbols.shape)
        gain, _ = self.gains(level_units)
        return {"z": read.z_symbols + self.z_offsets[None, :, None, None],
                "hyper_bits": self.hyper_tables.information(read.z_symbols, hyper_indexes),
                "symbols": read.symbols, "means": read.means, "scale_indexes": read.indexes,
                "latent_bits": self.latent_tables.information(read.symbols, read.indexes),
                "gains": gain.flatten()}

    def sample(self, latent_size: tuple[int, int], level_units: int, rng: np.random.Generator) -> np.ndarray:
        """A latent (1, M, h, w) drawn from the model, as :meth:`decode` would decode it: z from
        its frozen tables, then each symbol from the Gaussian table its z-predicted scale selects."""
        draw = functools.partial(CodingTables.sample, rng=rng)
        read = self._read(draw, draw, latent_size, level_units)
        return self._reconstruct(read.symbols, read.means, level_units)

    def _read_streams(self, hyper_stream: bytes, latent_stream: bytes, latent_size: tuple[int, int],
                      level_units: int) -> _Read:
        """:meth:`_read` from a file's streams, each of which must be consumed exactly."""
        hyper, latent = SegmentReader(hyper_stream), SegmentReader(latent_stream)
        read = self._read(hyper, latent, latent_size, level_units)
        hyper.finish()
        latent.finish()
        return read

    def _read(self, hyper: SymbolSource, latent: SymbolSource, latent_size: tuple[int, int],
              level_units: int) -> _Read:
        """The symbols in decoding order: z from ``hyper`` under its tables, the entropy parameters
        from z, then the latent symbols from ``latent`` under the tables they select."""
        shape = self.hyper_shape(*latent_size)
        z_symbols = hyper(self.hyper_tables, self._hyper_table_indexes(shape))
        means, log_scales = self.entropy_parameters(z_symbols + self.z_offsets[None, :, None, None])
        return _Read(z_symbols, *self._read_latent(means, log_scales, level_units, latent))

    def _read_latent(self, means: np.ndarray, log_scales: np.ndarray, level_units: int,
                     latent: SymbolSource) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(means, table indexes, symbols) of the latent, given the hyperprior's means and log-scales."""
        indexes = self.entropy_parameters.indexes(log_scales, level_units)
        del log_scales
        return means, indexes, latent(self.latent_tables, indexes)

    def _reconstruct(self, symbols: np.ndarray, means: np.ndarray, level_units: int) -> np.ndarray:
        """The latent y_hat = (s + mu * g) * g' of symbols s and means mu (before gains)."""
        gain, inverse_gain = self.gains(level_units)
        return (symbols.astype(np.float32) + means * gain) * inverse_gain


# Where a set of symbols comes from, given the tables and each symbol's table index: a stream's ANS
# decoder (a ``SegmentReader``, read one segment a call), or a random draw.
SymbolSource = Callable[[CodingTables, np.ndarray], np.ndarray]


class _Read(NamedTuple):
    """The symbols of a latent and its hyper-latent, and what selected their tables."""

    z_symbols: np.ndarray  # hyper-latent less its channel offsets (1, N, h/4, w/4)
    means: np.ndarray  # latent means before gains (1, M, h, w) float32
    indexes: np.ndarray  # scale-table indexes (1, M, h, w)
    symbols: np.ndarray  # latent symbols (1, M, h, w)
