"""The channel-conditional latent coder (kind "channel-context"): groups of channels coded in turn.

Everything of the hyperprior's coder holds (``vaecodec.latent.hyperprior``: the hyper stream, the
integer hyper-synthesis, the gains, the Gaussian tables), and the latent's channels are coded in
the groups of ``ModelConfig.context_groups``, one after another. Before group k is coded, its
entropy parameters are corrected from what the decoder already has, in exact integer arithmetic
(``vaecodec.model.fixed_point``; all values below are fixed-point integers with ACT_BITS
fractional bits unless said otherwise):

1. The group's context network (``HyperpriorModel.context[k]``, convolutions and LeakyReLUs run
   as an ``IntegerSequential``) reads, channel-stacked: the group's hyperprior means mu, its
   hyperprior log-scales (the integer log-scales, units of 1/LOG_UNIT, times 2**ACT_BITS /
   LOG_UNIT), and the decoded latent d of every earlier group.
2. Its output's first half is added to the means: mu' = mu + out[:G]; the second half, floored to
   units of 1/LOG_UNIT (floor(out[G:] * LOG_UNIT / 2**ACT_BITS)), is added to the log-scales.
3. Coding is as in the hyperprior's coder with mu' and the corrected log-scales: the table index
   is scale_index(log-scale + L), L the level's integer log-gain of the channel, and the symbol is
   s = round(y * g - mu' * g) with the float gain g.
4. The group's decoded latent, for the groups after it, is d = mu' + s * E[L], clamped to
   +-ACT_LIMIT, where E is the weights' frozen table E[L] = round(2**ACT_BITS * exp(-L / LOG_UNIT))
   (``exp_table``, for L in -EXP_RANGE..EXP_RANGE, L clamped to it): s / g in fixed point,
   computed without floating point.

The latent stream holds the groups' symbols in order, each group grouped by table index as the
hyperprior's one stream is (``CodingTables.encode_segments``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Callable

import numpy as np

from vaecodec.entropy.tables import LOG_UNIT, scale_index
from vaecodec.latent.hyperprior import GainedLatent, HyperpriorCoder, PreparedLatent, SymbolSource
from vaecodec.model.fixed_point import ACT_BITS, ACT_LIMIT, IntegerSequential
from vaecodec.model.rate_levels import blend_exact

if TYPE_CHECKING:
    from vaecodec.model.bundle import Bundle
    from vaecodec.model.hyperprior import HyperpriorModel

EXP_RANGE = 4096  # integer log-gains (1/LOG_UNIT) the exp table covers: gains of e**-16 .. e**16
_PER_LOG_UNIT = (1 << ACT_BITS) // LOG_UNIT  # fixed-point steps per 1/LOG_UNIT of a log-scale

# symbols of a group, from its channels, its float means mu' (before gains) and its table indexes
GroupSymbols = Callable[[slice, np.ndarray, np.ndarray], np.ndarray]


def build_exp_table() -> np.ndarray:
    """E[L] = round(2**ACT_BITS * exp(-L / LOG_UNIT)) for L = -EXP_RANGE .. EXP_RANGE (built at export)."""
    import torch  # export only: torch's exp built the shipped table

    levels = torch.arange(-EXP_RANGE, EXP_RANGE + 1, dtype=torch.float64)
    return torch.round((1 << ACT_BITS) * torch.exp(-levels / LOG_UNIT)).to(torch.int64).numpy()


def _rounding(y: np.ndarray, gain: np.ndarray) -> GroupSymbols:
    """The coder's quantization of a group: s = round(y * g - mu' * g)."""

    def symbols(group: slice, means: np.ndarray, indexes: np.ndarray) -> np.ndarray:
        g = gain[:, group]
        return np.round(y[:, group] * g - means * g)

    return symbols


class ContextCoder(HyperpriorCoder):
    """The latent coder of weights with context groups; see the module docstring."""

    kind = "channel-context"
    format_version = 2
    frozen_table_names = (*HyperpriorCoder.frozen_table_names, "exp_table")

    @staticmethod
    def frozen_tables(model: HyperpriorModel) -> dict[str, np.ndarray]:
        return {**HyperpriorCoder.frozen_tables(model), "exp_table": build_exp_table()}

    def __init__(self, bundle: Bundle) -> None:
        super().__init__(bundle)
        self.exp_table = np.asarray(bundle.arrays["exp_table"], dtype=np.int64)
        self.groups = [slice(first, end) for first, end in bundle.config.group_bounds()]
        self.networks = [IntegerSequential(bundle.networks[f"context.{k}"]) for k in range(len(self.groups))]

    def encode(self, prepared: PreparedLatent, level_units: int) -> bytes:
        """The latent stream at an integer rate level: the groups' segments in order."""
        gain, _ = self.gains(level_units)
        segments: list[tuple[np.ndarray, np.ndarray]] = []
        rounded = _rounding(prepared.y, gain)

        def symbols(group: slice, means: np.ndarray, indexes: np.ndarray) -> np.ndarray:
            values = rounded(group, means, indexes)
            segments.append((values, indexes))
            return values

        self._walk(prepared.means, prepared.log_scales, level_units, symbols)
        return self.latent_tables.encode_segments(segments)

    def gained(self, prepared: PreparedLatent, level_units: int) -> GainedLatent:
        """The latent at an integer rate level as :meth:`encode` rounds and codes it, with the
        groups' means and scales of its plain symbols; for other symbols (the encode effort's) it
        follows them, walking the groups again with those symbols.

        The effort's objective (``vaecodec.latent.sga``) holds each step's means and scales fixed,
        so it does not see how one group's symbols move the later groups' parameters; the symbols
        it chooses are coded as chosen, each group's under the parameters that the earlier groups'
        chosen symbols give, and its final comparison with the plain symbols uses those."""
        gain, inverse_gain = self.gains(level_units)
        means, log_scales = prepared.means, prepared.log_scales

        def walked(symbols_of: GroupSymbols) -> GainedLatent:
            group_means, indexes, _ = self._walk(means, log_scales, level_units, symbols_of)
            return replace(GainedLatent.at(prepared.y, group_means, indexes, gain, inverse_gain), follow=follow)

        def follow(symbols: np.ndarray) -> GainedLatent:
            return walked(lambda group, group_means, indexes: symbols[:, group])

        return walked(_rounding(prepared.y, gain))

    def _read_latent(self, means: np.ndarray, log_scales: np.ndarray, level_units: int,
                     latent: SymbolSource) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._walk(means, log_scales, level_units,
                          lambda group, group_means, indexes: latent(self.latent_tables, indexes))

    def _walk(self, means: np.ndarray, log_scales: np.ndarray, level_units: int,
              symbols_of: GroupSymbols) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The groups in coding order: each one's corrected means and table indexes from what came
        before, then its symbols (``symbols_of``); returns the whole latent's (means, indexes, symbols)."""
        fixed_means = np.round(means.astype(np.float64) * (1 << ACT_BITS))  # exact: the means are fixed-point values
        log_gains = blend_exact(self.entropy_parameters.log_gain, level_units)
        all_means, all_indexes, all_symbols, decoded = [], [], [], []
        for group, network in zip(self.groups, self.networks):
            group_means, group_log_scales = fixed_means[:, group], log_scales[:, group].astype(np.int64)
            inputs = np.concatenate([group_means, group_log_scales.astype(np.float64) * _PER_LOG_UNIT, *decoded], axis=1)
            correction = network(inputs)
            size = group.stop - group.start
            group_means = group_means + correction[:, :size]
            steps = np.floor(correction[:, size:] / _PER_LOG_UNIT).astype(np.int64)
            level_gains = log_gains[group][None, :, None, None]
            indexes = scale_index(group_log_scales + steps + level_gains)
            float_means = (group_means / (1 << ACT_BITS)).astype(np.float32)
            values = symbols_of(group, float_means, indexes)
            inverse_gains = self.exp_table[np.clip(level_gains + EXP_RANGE, 0, 2 * EXP_RANGE)]
            decoded.append(np.clip(group_means + np.asarray(values, dtype=np.float64) * inverse_gains,
                                   -ACT_LIMIT, ACT_LIMIT))
            all_means.append(float_means)
            all_indexes.append(indexes)
            all_symbols.append(values)
        return (np.concatenate(all_means, axis=1), np.concatenate(all_indexes, axis=1),
                np.concatenate(all_symbols, axis=1))
