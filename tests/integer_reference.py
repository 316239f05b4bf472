"""The integer networks' arithmetic written a second way, with torch's float64 convolutions, as the
reference that the numpy layers (``vaecodec.model.fixed_point``) must equal bit for bit."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vaecodec.model.fixed_point import ACT_BITS, ACT_LIMIT, LEAKY_NUMERATOR, WEIGHT_BITS


def float64_reference(network: nn.Sequential, x: np.ndarray) -> np.ndarray:
    """A trained network of convolutions and LeakyReLUs on fixed-point integers, as torch computes it."""
    value = torch.from_numpy(x)
    for layer in network:
        if isinstance(layer, nn.LeakyReLU):
            value = torch.where(value < 0, torch.floor(value * LEAKY_NUMERATOR / 4096), value)
            continue
        weight = torch.round(layer.weight.detach().double() * (1 << WEIGHT_BITS))
        bias = torch.round(layer.bias.detach().double() * (1 << (WEIGHT_BITS + ACT_BITS)))
        if isinstance(layer, nn.ConvTranspose2d):
            acc = F.conv_transpose2d(value, weight, bias, layer.stride, layer.padding, layer.output_padding)
        else:
            acc = F.conv2d(value, weight, bias, layer.stride, layer.padding)
        value = torch.floor((acc + (1 << (WEIGHT_BITS - 1))) / (1 << WEIGHT_BITS)).clamp(-ACT_LIMIT, ACT_LIMIT)
    return value.numpy()
