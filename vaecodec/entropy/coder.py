"""The two entropy-coded streams of a .vae file, coded with constriction's ANS coder.

- Latent stream: integer symbols round(y*g - mu*g), each coded under a zero-mean quantized
  Gaussian on [-LATENT_RADIUS, LATENT_RADIUS] whose standard deviation is ``SCALE_TABLE[index]``.
- Hyper-latent stream: per channel, the integers z - offset[c] on [-R, R], coded under that
  channel's frozen integer table (counts summing to 2**16), channel by channel in raster order.

Every probability the coder sees is therefore a function of integers only (table indices and
frozen counts), which is what keeps encoder and decoder in step.
"""

from __future__ import annotations

import numpy as np
import constriction

from vaecodec.entropy.tables import SCALE_TABLE
from vaecodec.errors import VaecodecError

LATENT_RADIUS = 1023
AnsCoder = constriction.stream.stack.AnsCoder
Categorical = constriction.stream.model.Categorical
_LATENT_MODEL = constriction.stream.model.QuantizedGaussian(-LATENT_RADIUS, LATENT_RADIUS)


class StreamError(VaecodecError):
    """A stream is malformed or does not decode to the expected number of symbols."""


def _to_bytes(coder: AnsCoder) -> bytes:
    return coder.get_compressed().astype("<u4").tobytes()


def _from_bytes(data: bytes) -> AnsCoder:
    if len(data) % 4:
        raise StreamError("entropy-coded stream length is not a multiple of 4 bytes")
    return AnsCoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))


def _latent_parameters(scale_indexes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    stds = SCALE_TABLE[np.asarray(scale_indexes, dtype=np.int64).ravel()]
    return np.zeros_like(stds), stds


def encode_latent(symbols: np.ndarray, scale_indexes: np.ndarray) -> bytes:
    """Code latent symbols (any shape; clipped to the coder's range) under their table scales."""
    flat = np.clip(np.asarray(symbols).ravel(), -LATENT_RADIUS, LATENT_RADIUS).astype(np.int32)
    coder = AnsCoder()
    coder.encode_reverse(flat, _LATENT_MODEL, *_latent_parameters(scale_indexes))
    return _to_bytes(coder)


def decode_latent(data: bytes, scale_indexes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_latent`; returns symbols shaped like ``scale_indexes``."""
    coder = _from_bytes(data)
    symbols = coder.decode(_LATENT_MODEL, *_latent_parameters(scale_indexes))
    _check_consumed(coder)
    return np.asarray(symbols, dtype=np.int64).reshape(np.shape(scale_indexes))


def _hyper_models(counts: np.ndarray) -> list[Categorical]:
    probabilities = counts.astype(np.float64) / counts.sum(axis=1, keepdims=True)
    return [Categorical(row, perfect=False) for row in probabilities]


def encode_hyper(symbols: np.ndarray, counts: np.ndarray) -> bytes:
    """Code hyper-latent symbols of shape (C, n), each in [-R, R], under per-channel tables."""
    radius = (counts.shape[1] - 1) // 2
    shifted = np.clip(symbols, -radius, radius).astype(np.int32) + radius
    coder = AnsCoder()
    # ANS is last-in first-out: code the channels in reverse so the decoder reads channel 0 first.
    for row, model in reversed(list(zip(shifted, _hyper_models(counts)))):
        coder.encode_reverse(np.ascontiguousarray(row), model)
    return _to_bytes(coder)


def decode_hyper(data: bytes, counts: np.ndarray, per_channel: int) -> np.ndarray:
    """Inverse of :func:`encode_hyper`; returns (C, per_channel) symbols in [-R, R]."""
    radius = (counts.shape[1] - 1) // 2
    coder = _from_bytes(data)
    rows = [np.asarray(coder.decode(model, per_channel)) for model in _hyper_models(counts)]
    _check_consumed(coder)
    return np.stack(rows).astype(np.int64) - radius


def _check_consumed(coder: AnsCoder) -> None:
    if not coder.is_empty():
        raise StreamError("entropy-coded stream has data left over after decoding")
