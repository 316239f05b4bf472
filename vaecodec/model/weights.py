"""Trained weights on disk: saving (with frozen coding tables) and loading without pickle.

A weights file is a ``torch.save`` of plain containers only (model kind, config dict, float16
state dict, integer tables, a metadata dict), so it loads with ``torch.load(weights_only=True)``.
Its identity in ``.vae`` files is the first 8 bytes of the SHA-256 of the file.

The model kind (absent in the first files: "hyperprior") picks the network class and the latent
coder (``vaecodec.latent``). Everything that defines coding probabilities and needs transcendental
functions to build is computed once at export, by the coder, and stored as integers.

Every set of weights that has shipped stays in the package (``weights/vaecodec-<id>.pt``, the
newest as ``vaecodec-default.pt``), so a file finds the weights that wrote it by its header's id.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from vaecodec.errors import VaecodecError
from vaecodec.latent.context import ContextCoder
from vaecodec.latent.hyperprior import HyperpriorCoder
from vaecodec.model.hyperprior import HyperpriorModel, ModelConfig

DEFAULT_WEIGHTS_NAME = "vaecodec-default.pt"
_FORMAT = "vaecodec-weights-1"
# Model kind -> (network class, latent coder class).
KINDS: dict[str, tuple[type, type]] = {HyperpriorCoder.kind: (HyperpriorModel, HyperpriorCoder),
                                       ContextCoder.kind: (HyperpriorModel, ContextCoder)}


@dataclass
class TrainedModel:
    """A model ready to code: the networks, their latent coder and the weights identifier."""

    model: HyperpriorModel
    coder: HyperpriorCoder
    weights_id: bytes
    metadata: dict


def _weights_folder() -> Path:
    return Path(str(resources.files("vaecodec.weights")))


def default_weights_path() -> Path:
    return _weights_folder() / DEFAULT_WEIGHTS_NAME


def packaged_weights_path(weights_id: bytes) -> Path | None:
    """The packaged weights file with this id (the default, or an earlier release's), if any."""
    path = _weights_folder() / f"vaecodec-{weights_id.hex()}.pt"
    if path.is_file():
        return path
    default = default_weights_path()
    return default if weights_id_of(default.read_bytes()) == weights_id else None


def model_kind(model: HyperpriorModel) -> str:
    return ContextCoder.kind if model.config.context_groups else HyperpriorCoder.kind


def serialize_weights(model: HyperpriorModel, metadata: dict | None = None) -> bytes:
    """The bytes of a weights file for ``model``; the coding tables are frozen from it now."""
    kind = model_kind(model)
    # Half precision halves the file; the networks run in float32 from these exact values.
    state = {k: v.detach().cpu().half().contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": _FORMAT,
        "kind": kind,
        "config": model.config.to_dict(),
        "state_dict": state,
        **KINDS[kind][1].frozen_tables(model),
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
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise VaecodecError("not a vaecodec weights file")
    kind = payload.get("kind", HyperpriorCoder.kind)
    if kind not in KINDS:
        raise VaecodecError(f"weights of model kind {kind!r}, which this vaecodec does not know; upgrade vaecodec")
    network, coder = KINDS[kind]
    model = network(ModelConfig.from_dict(payload["config"]))
    model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    model.eval()
    return TrainedModel(model, coder(model, payload), weights_id_of(data), dict(payload.get("metadata", {})))
