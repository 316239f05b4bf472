"""The variable-rate mean-scale hyperprior VAE (Ballé 2018, Minnen 2018, gain units of Cui 2021).

Encoder path: image -> analysis transform g_a -> latent y -> hyper-analysis h_a -> hyper-latent z.
z is coded under a learned factorized density; the hyper-synthesis h_s maps the decoded z to a
mean mu and a scale sigma for every element of y. One set of weights covers the whole rate range:
a continuous rate level t picks (by log-linear interpolation between the trained levels 0..levels-1,
and extrapolation of the first two below 0: ``vaecodec.model.rate_levels``) a per-channel gain g
that multiplies y before rounding, and an inverse gain applied after; a larger gain means finer steps.

With ``context_groups`` (a channel-conditional entropy model, Minnen & Singh 2020, with ELIC's
uneven groups), the latent's channels fall into groups coded one after another: a small network
per group (1x1, 3x3, 1x1 convolutions) corrects the hyperprior's mean and log-scale of its
channels from their hyperprior parameters and the decoded latent of the groups before it. Its
last layer starts at zero, so a model given a context computes what it did without one until
training (of the whole model: the transforms learn to leave what the context can use) moves it.
The decoded latent a context sees is mu' + s / g (the symbol s in units of the gain g), which
the integer coder computes exactly (``vaecodec.latent.context``).
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from vaecodec.errors import VaecodecError
from vaecodec.model.layers import GDN, FactorizedDensity, gaussian_likelihood
from vaecodec.model.config import DEFAULT_LAMBDAS, MS_SSIM_LAMBDAS, ModelConfig  # noqa: F401 (re-exported)
from vaecodec.model.rate_levels import blend
from vaecodec.tunes import DISTORTIONS

def _conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def _deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, padding=kernel // 2, output_padding=stride - 1)


def context_network(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    """A context group's network; its last layer starts at zero (no correction)."""
    network = nn.Sequential(_conv(inputs, hidden, 1, 1), nn.LeakyReLU(inplace=True), _conv(hidden, hidden, 3, 1),
                            nn.LeakyReLU(inplace=True), _conv(hidden, outputs, 1, 1))
    nn.init.zeros_(network[-1].weight)
    nn.init.zeros_(network[-1].bias)
    return network


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


# The smallest scale whose log a context sees: softplus at the bottom of the integer coder's
# log-scale table (``vaecodec.model.fixed_point.LUT_MIN``).
_SMALLEST_SCALE = math.log1p(math.exp(-16))


class HyperpriorModel(nn.Module):
    """Mean-scale hyperprior with gain units; see the module docstring."""

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        n, m, h = config.channels, config.latent_channels, config.hyper
        self.g_a = nn.Sequential(
            _conv(3, n), GDN(n), _conv(n, n), GDN(n), _conv(n, n), GDN(n), _conv(n, m)
        )
        self.g_s = nn.Sequential(
            _deconv(m, n), GDN(n, inverse=True), _deconv(n, n), GDN(n, inverse=True),
            _deconv(n, n), GDN(n, inverse=True), _deconv(n, 3),
        )
        self.h_a = nn.Sequential(
            _conv(m, h, 3, 1), nn.LeakyReLU(inplace=True), _conv(h, h), nn.LeakyReLU(inplace=True), _conv(h, h)
        )
        self.h_s = nn.Sequential(
            _deconv(h, m), nn.LeakyReLU(inplace=True), _deconv(m, m * 3 // 2), nn.LeakyReLU(inplace=True),
            _conv(m * 3 // 2, 2 * m, 3, 1),
        )
        self.hyper_density = FactorizedDensity(h)
        if config.context_groups:
            if sum(config.context_groups) != m or min(config.context_groups) < 1:
                raise VaecodecError(f"context groups {','.join(map(str, config.context_groups))} must add up to "
                                    f"the {m} latent channels")
            self.context = nn.ModuleList(context_network(2 * (end - first) + first, config.context_channels,
                                                         2 * (end - first)) for first, end in config.group_bounds())
        # Step size scales as 1/sqrt(lambda) at high rate, so start the gains there.
        lambdas = torch.tensor(config.lambdas)
        log_gain = 0.5 * torch.log(lambdas / lambdas[len(lambdas) // 2])
        self.log_gain = nn.Parameter(log_gain[:, None].repeat(1, m))
        self.log_inverse_gain = nn.Parameter(-log_gain[:, None].repeat(1, m))

    @property
    def levels(self) -> int:
        return len(self.config.lambdas)

    @property
    def lowest_level(self) -> float:
        return self.config.lowest_level_hundredths / 100

    def _interpolate(self, table: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Log-linear interpolation of per-level rows at continuous levels (B,) -> (B, M, 1, 1);
        levels below 0 extrapolate the first two rows."""
        level = level.clamp(self.lowest_level, self.levels - 1)
        return torch.exp(blend(table, level))[:, :, None, None]

    def with_rate_levels(self, lambdas: tuple[float, ...], lowest_level_hundredths: int) -> HyperpriorModel:
        """A copy of this model for other trade-offs (ascending lambdas, any count) and another
        quality-0 level, to train on from here. Each new level's gains are read off the old gain
        curve where it had that lambda (log-linearly, extrapolating past either end), so the copy
        starts at about the rates its lambdas ask for and training only fine-tunes them."""
        old = torch.log(torch.tensor(self.config.lambdas, dtype=torch.float64))
        new = torch.log(torch.tensor(lambdas, dtype=torch.float64))
        segment = (torch.searchsorted(old, new) - 1).clamp(0, self.levels - 2)
        at = (segment + (new - old[segment]) / (old[segment + 1] - old[segment])).float()
        model = HyperpriorModel(replace(self.config, lambdas=tuple(lambdas), lowest_level_hundredths=lowest_level_hundredths))
        state = self.state_dict()
        for name in ("log_gain", "log_inverse_gain"):
            state[name] = blend(state[name], at)
        model.load_state_dict(state)
        return model

    def for_distortion(self, distortion: str, lambdas: tuple[float, ...]) -> HyperpriorModel:
        """A copy of this model whose levels trade rate against another distortion, with these
        lambdas (one per level); the gains stay, so a fine-tune starts from today's rates."""
        if distortion not in DISTORTIONS:
            raise VaecodecError(f"unknown distortion {distortion!r}: choose one of {', '.join(DISTORTIONS)}")
        if len(lambdas) != self.levels:
            raise VaecodecError(f"{distortion} needs {self.levels} lambdas, one per rate level, not {len(lambdas)}")
        model = HyperpriorModel(replace(self.config, lambdas=tuple(lambdas), distortion=distortion))
        model.load_state_dict(self.state_dict())
        return model

    def gains(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder-side gain and decoder-side inverse gain at rate levels (B,)."""
        return self._interpolate(self.log_gain, level), self._interpolate(self.log_inverse_gain, level)

    def lambdas_at(self, level: torch.Tensor) -> torch.Tensor:
        """The trade-off lambda at continuous levels, interpolated in the log domain."""
        table = torch.log(torch.tensor(self.config.lambdas, device=level.device))[:, None]
        return self._interpolate(table, level).flatten()

    def hyper_parameters(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and scale of every latent element (before gains) from the decoded hyper-latent."""
        means, raw_scales = self.h_s(z_hat).float().chunk(2, dim=1)
        return means, F.softplus(raw_scales)

    def forward(self, x: torch.Tensor, level: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training pass: additive noise for the rate terms, rounded values for the synthesis.

        Under bf16 autocast the networks run in bf16, while the latents, their rounding, the
        likelihoods and the reconstruction leave them in fp32 (``.float()``): the rate terms need
        more than bf16's 8 bits of mantissa.
        """
        y = self.g_a(x).float()
        z = self.h_a(y).float()
        with torch.autocast(x.device.type, enabled=False):
            z_likelihoods = self.hyper_density.likelihood(z + torch.empty_like(z).uniform_(-0.5, 0.5))
        means, scales = self.hyper_parameters(ste_round(z))
        gain, inverse_gain = self.gains(level)
        groups = self.config.group_bounds() if self.config.context_groups else [(0, self.config.latent_channels)]
        likelihoods, reconstructed, decoded = [], [], []
        for k, (first, end) in enumerate(groups):
            group = slice(first, end)
            group_means, group_scales = means[:, group], scales[:, group]
            if self.config.context_groups:
                log_scales = torch.log(group_scales.clamp_min(_SMALLEST_SCALE))
                correction = self.context[k](torch.cat([group_means, log_scales, *decoded], dim=1)).float()
                mean_step, log_scale_step = correction.chunk(2, dim=1)
                group_means, group_scales = group_means + mean_step, torch.exp(log_scales + log_scale_step)
            with torch.autocast(x.device.type, enabled=False):
                g = gain[:, group]
                y_gained, means_gained = y[:, group] * g, group_means * g
                noisy = y_gained + torch.empty_like(y_gained).uniform_(-0.5, 0.5)
                likelihoods.append(gaussian_likelihood(noisy, means_gained, group_scales * g))
                symbols = ste_round(y_gained - means_gained)
                reconstructed.append((symbols + means_gained) * inverse_gain[:, group])
                if self.config.context_groups:
                    decoded.append(group_means + symbols / g)  # what the next groups' contexts see
        y_hat = torch.cat(reconstructed, dim=1)
        return {"x_hat": self.g_s(y_hat).float(), "y_likelihoods": torch.cat(likelihoods, dim=1),
                "z_likelihoods": z_likelihoods}
