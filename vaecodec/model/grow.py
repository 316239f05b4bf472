"""Widening a trained model without changing what it computes: growth instead of a fresh start.

Capacity caps the top of the rate-distortion curve, and training a larger model from scratch on
two CPU cores would take days. A wider model that starts as the trained one loses nothing and
trains from there (the Net2WiderNet idea, Chen et al. 2016). Each weight tensor of the wider
model is a fresh initialisation with the trained tensor copied into its corner, and the weights
from new units into old ones set to zero: every old unit computes exactly what it did, while the
new units compute fresh random features that the zero weights downstream ignore until training
gives them weight. So the reconstruction is unchanged; the rate changes only by the new latent
channels, which the hyper-synthesis first predicts with zero mean.

- ``channels`` (N) widens the analysis and synthesis transforms (GDN's new rows and columns are
  the identity-like fresh ones, so old channels are normalised as before); the hyper networks and
  the hyper-latent keep their width (``ModelConfig.hyper_channels``).
- ``latent_channels`` (M) adds latent channels: the analysis emits them, the hyper networks read
  and predict them (their hidden widths follow M), the synthesis reads them; their gains start at
  the mean of the trained ones at each level.

``with_context`` gives a model a channel-conditional context (``HyperpriorModel``'s
``context_groups``) whose corrections start at zero: it codes exactly as before, in the other
stream layout, until training moves them.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from vaecodec.errors import VaecodecError
from vaecodec.model.hyperprior import HyperpriorModel


def _embed(old: torch.Tensor, new: torch.Tensor, transposed: bool) -> torch.Tensor:
    """``new`` with ``old`` in its corner and the weights from new inputs into old outputs zeroed."""
    out = new.clone()
    out[tuple(slice(0, size) for size in old.shape)] = old
    if out.dim() == 4:
        inputs, outputs = (0, 1) if transposed else (1, 0)
        index = [slice(None)] * 4
        index[inputs], index[outputs] = slice(old.shape[inputs], None), slice(0, old.shape[outputs])
        out[tuple(index)] = 0
    return out


def _scale_rows(old_m: int, new_m: int) -> torch.Tensor:
    """Where the hyper-synthesis's old output rows go: means 0..M-1 stay, scales M+j move to M'+j."""
    return torch.cat([torch.arange(old_m), torch.arange(old_m) + new_m])


def with_context(model: HyperpriorModel, groups: tuple[int, ...], hidden: int = 64) -> HyperpriorModel:
    """A copy of ``model`` with context groups (their channels, in coding order) added."""
    if model.config.context_groups:
        raise VaecodecError("the model has context groups already")
    if sum(groups) != model.config.latent_channels or min(groups, default=0) < 1:
        raise VaecodecError(f"context groups {','.join(map(str, groups))} must add up to the "
                            f"{model.config.latent_channels} latent channels")
    grown = HyperpriorModel(replace(model.config, context_groups=tuple(groups), context_channels=hidden))
    grown.load_state_dict(model.state_dict(), strict=False)  # all but the new context networks
    return grown


def widen(model: HyperpriorModel, channels: int, latent_channels: int, seed: int = 0) -> HyperpriorModel:
    """A wider copy of ``model`` computing the same reconstruction; see the module docstring."""
    config = model.config
    if channels < config.channels or latent_channels < config.latent_channels:
        raise VaecodecError(f"a model grows only: {config.channels}/{config.latent_channels} channels cannot become "
                            f"{channels}/{latent_channels}")
    torch.manual_seed(seed)
    grown = HyperpriorModel(replace(config, channels=channels, latent_channels=latent_channels,
                                    hyper_channels=config.hyper))
    old_state, state = model.state_dict(), grown.state_dict()
    transposed = {f"{name}.weight" for name, module in grown.named_modules() if isinstance(module, nn.ConvTranspose2d)}
    last_h_s = f"h_s.{len(grown.h_s) - 1}"
    m, new_m = config.latent_channels, latent_channels
    for name, old in old_state.items():
        if name.startswith(last_h_s):  # the mean and scale halves of the last layer move apart
            rows = _scale_rows(m, new_m)
            fresh = state[name]
            if name.endswith("weight"):
                fresh[m:new_m] = 0  # new channels' means start at 0 ...
                fresh[new_m + m:] = 0  # ... and their scales at softplus(bias)
                fresh[rows] = _embed(old, fresh[rows], transposed=False)
            else:
                fresh[m:new_m] = 0
                fresh[new_m + m:] = 0
                fresh[rows] = old
        elif name in ("log_gain", "log_inverse_gain"):
            state[name] = torch.cat([old, old.mean(dim=1, keepdim=True).expand(-1, new_m - m)], dim=1)
        else:
            state[name] = _embed(old, state[name], name in transposed)
    grown.load_state_dict(state)
    return grown
