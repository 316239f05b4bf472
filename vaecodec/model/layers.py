"""Building blocks of the transforms: GDN and the learned factorized density.

Both follow Ballé et al., "Variational image compression with a scale hyperprior" (ICLR 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vaecodec.entropy.tables import SCALE_MIN

LIKELIHOOD_FLOOR = 1e-9


class GDN(nn.Module):
    """Generalized divisive normalization: y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2).

    With ``inverse=True`` it multiplies instead (IGDN, used in the synthesis transform).
    beta and gamma are stored as square roots so they stay non-negative under gradient steps.
    """

    def __init__(self, channels: int, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta_sqrt = nn.Parameter(torch.ones(channels))
        self.gamma_sqrt = nn.Parameter(torch.sqrt(0.1 * torch.eye(channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta, gamma = self.beta_gamma()
        norm = F.conv2d(x * x, gamma, beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)

    def beta_gamma(self) -> tuple[torch.Tensor, torch.Tensor]:
        """beta (C,) and gamma as the weight of a 1x1 convolution (C, C, 1, 1)."""
        c = self.gamma_sqrt.shape[0]
        return self.beta_sqrt.square() + 1e-6, self.gamma_sqrt.square().view(c, c, 1, 1)


class FactorizedDensity(nn.Module):
    """A learned univariate density per channel, used as the prior of the hyper-latent z.

    The cumulative is a small monotone MLP (filters 3-3-3) per channel; the probability of an
    integer bin is the difference of the cumulative at its two edges.
    """

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0) -> None:
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for k in range(len(filters) + 1):
            init = float(torch.log(torch.expm1(torch.tensor(1 / scale / dims[k + 1]))))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[k + 1], dims[k]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[k + 1], 1) - 0.5))
            if k < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[k + 1], 1)))

    def logits_cdf(self, v: torch.Tensor) -> torch.Tensor:
        """Logit of the cumulative at ``v`` of shape (channels, 1, n)."""
        for k, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            v = torch.matmul(F.softplus(matrix), v) + bias
            if k < len(self.factors):
                v = v + torch.tanh(self.factors[k]) * torch.tanh(v)
        return v

    def _bin_mass(self, v: torch.Tensor) -> torch.Tensor:
        """Mass of the unit bins centred on ``v`` (channels, 1, n)."""
        lower = self.logits_cdf(v - 0.5)
        upper = self.logits_cdf(v + 0.5)
        # Evaluate in the tail where the sigmoid is accurate (the sign trick of Ballé et al.).
        sign = -torch.sign(lower + upper).detach()
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """Probability mass of the unit bin around each element of z (B, C, H, W)."""
        b, c, h, w = z.shape
        p = self._bin_mass(z.permute(1, 0, 2, 3).reshape(c, 1, -1))
        return p.reshape(c, b, h, w).permute(1, 0, 2, 3).clamp_min(LIKELIHOOD_FLOOR)

    @torch.no_grad()
    def integer_pmf(self, radius: int) -> torch.Tensor:
        """Probability of each integer in [-radius, radius] per channel, float64 (C, 2r+1)."""
        c = self.matrices[0].shape[0]
        grid = torch.arange(-radius, radius + 1, dtype=torch.float32)
        return self._bin_mass(grid.view(1, 1, -1).expand(c, 1, -1)).reshape(c, -1).double()


def gaussian_likelihood(values: torch.Tensor, means: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Mass of the unit bin around each value under N(mean, scale), computed in the upper tail."""
    v = torch.abs(values - means)
    scales = scales.clamp_min(SCALE_MIN)
    upper = _std_normal_cdf((0.5 - v) / scales)
    lower = _std_normal_cdf((-0.5 - v) / scales)
    return (upper - lower).clamp_min(LIKELIHOOD_FLOOR)


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2**-0.5))
