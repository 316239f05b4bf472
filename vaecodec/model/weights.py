"""Trained weights on disk: saving (with frozen coding tables) and loading without pickle.

A weights file is a ``torch.save`` of plain containers only (config dict, float16 state dict,
integer tables, a metadata dict), so it loads with ``torch.load(weights_only=True)``. Its identity in
``.vae`` files is the first 8 bytes of the SHA-256 of the file.

Everything that defines coding probabilities and needs transcendental functions to build is
computed once at export and stored as integers: the hyper-latent tables, the latent's Gaussian
tables and the log-scale table of the integer hyper-synthesis.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from vaecodec.entropy.coder import CodingTables
from vaecodec.entropy.tables import HYPER_PRECISION_BITS, gaussian_table_counts, quantize_pmf
from vaecodec.errors import VaecodecError
from vaecodec.model.fixed_point import IntegerEntropyParameters, build_log_scale_table
from vaecodec.model.hyperprior import HyperpriorModel, ModelConfig

DEFAULT_WEIGHTS_NAME = "vaecodec-default.pt"
# Hyper-latent values coded per channel: integers within this many of the channel's mode.
_MAX_TABLE_RADIUS = 255
_TAIL_MASS = 1e-7


@dataclass
class TrainedModel:
    """A model ready to code: the networks, the frozen coding tables and the weights identifier."""

    model: HyperpriorModel
    z_offsets: np.ndarray  # (C,) int: the integer each hyper-latent channel's symbols are centred on
    hyper_tables: CodingTables  # one table per hyper-latent channel, of offset-R .. offset+R
    latent_tables: CodingTables  # one zero-mean quantized Gaussian per scale-table entry
    entropy_parameters: IntegerEntropyParameters
    weights_id: bytes
    metadata: dict


def default_weights_path() -> Path:
    return Path(str(resources.files("vaecodec.weights").joinpath(DEFAULT_WEIGHTS_NAME)))


def freeze_hyper_tables(model: HyperpriorModel) -> tuple[np.ndarray, np.ndarray]:
    """Integer coding tables of the hyper-latent from the learned density, built once at export."""
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


def serialize_weights(model: HyperpriorModel, metadata: dict | None = None) -> bytes:
    """The bytes of a weights file for ``model``; the coding tables are frozen from it now."""
    offsets, counts = freeze_hyper_tables(model)
    # Half precision halves the file; the networks run in float32 from these exact values.
    state = {k: v.detach().cpu().half().contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": "vaecodec-weights-1",
        "config": model.config.to_dict(),
        "state_dict": state,
        "z_offsets": torch.from_numpy(offsets),
        "z_counts": torch.from_numpy(counts),
        "latent_counts": torch.from_numpy(gaussian_table_counts()),
        "log_scale_table": build_log_scale_table(),
        "metadata": dict(metadata or {}),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_weights(model: HyperpriorModel, path: Path, metadata: dict | None = None) -> bytes:
    """Write a weights file atomically; returns its identifier."""
    data = serialize_weights(model, metadata)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return weights_id_of(data)


def weights_id_of(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:8]


def load_weights(path: Path | None = None) -> TrainedModel:
    """Load a weights file (the shipped default when ``path`` is None) for coding, in eval mode."""
    path = Path(path) if path is not None else default_weights_path()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VaecodecError(f"cannot read weights {path}: {exc.strerror or exc}") from None
    try:
        return weights_from_bytes(data)
    except VaecodecError as exc:
        raise VaecodecError(f"{path}: {exc}") from None


def weights_from_bytes(data: bytes) -> TrainedModel:
    """Parse the bytes of a weights file (no pickle: plain tensors and containers only)."""
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:
        raise VaecodecError("not a vaecodec weights file") from None
    if not isinstance(payload, dict) or payload.get("format") != "vaecodec-weights-1":
        raise VaecodecError("not a vaecodec weights file")
    model = HyperpriorModel(ModelConfig.from_dict(payload["config"]))
    model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    model.eval()
    return TrainedModel(
        model=model,
        z_offsets=payload["z_offsets"].numpy().astype(np.int64),
        hyper_tables=CodingTables(payload["z_counts"].numpy()),
        latent_tables=CodingTables(payload["latent_counts"].numpy()),
        entropy_parameters=IntegerEntropyParameters(model.h_s, model.log_gain, payload["log_scale_table"]),
        weights_id=weights_id_of(data),
        metadata=dict(payload.get("metadata", {})),
    )
