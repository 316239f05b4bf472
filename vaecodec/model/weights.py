"""Trained weights on disk: saving (with frozen coding tables) and loading without pickle.

A weights file is a ``torch.save`` of plain containers only (model kind, config dict, float16
state dict, integer tables, a metadata dict), so it loads with ``torch.load(weights_only=True)``.
Its identity in ``.vae`` files is the first 8 bytes of the SHA-256 of the file.

The model kind (absent in the first files: "hyperprior") picks the network class and the latent
coder (``vaecodec.latent``). Everything that defines coding probabilities and needs transcendental
functions to build is computed once at export, by the coder, and stored as integers.

Every set of weights that has shipped stays in the package (``weights/vaecodec-<id>.pt``, each
tune's newest under its tune's name, ``vaecodec-default.pt`` for psnr), so a file finds the
weights that wrote it by its header's id.

The coding runtime reads the same weights as a bundle (``vaecodec.model.bundle``): the tables, the
quantized integer networks and the transforms as ONNX graphs. ``bundle_of`` makes one from loaded
weights; ``save_weights`` writes one beside every ``.pt`` it writes, and ``python -m
vaecodec.model.weights FILE.pt ...`` writes them for existing files (once, for the shipped ones).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vaecodec.errors import MissingExtra, VaecodecError
from vaecodec.extras import TORCH, needs_extra
from vaecodec.latent.context import ContextCoder
from vaecodec.latent.hyperprior import HyperpriorCoder
from vaecodec.latent.kinds import CODERS, coder_class
from vaecodec.model.bundle import BUNDLE_SUFFIX, Bundle
from vaecodec.model.fixed_point import ConvSpec, LayerData
from vaecodec.model.hyperprior import HyperpriorModel, ModelConfig

DEFAULT_WEIGHTS_NAME = "vaecodec-default.pt"
_FORMAT = "vaecodec-weights-1"
# Model kind -> (network class, latent coder class).
KINDS: dict[str, tuple[type, type]] = {kind: (HyperpriorModel, coder) for kind, coder in CODERS.items()}


@dataclass
class TrainedModel:
    """A model ready to code: the networks, the runtime's bundle of them (without graphs), their
    latent coder and the weights identifier."""

    model: HyperpriorModel
    bundle: Bundle
    coder: HyperpriorCoder
    weights_id: bytes
    metadata: dict


def _weights_folder() -> Path:
    return Path(str(resources.files("vaecodec.weights")))


def default_weights_path() -> Path:
    return _weights_folder() / DEFAULT_WEIGHTS_NAME


def packaged_weights_path(weights_id: bytes) -> Path | None:
    """The packaged weights file with this id (a tune's, or an earlier release's), if any."""
    path = _weights_folder() / f"vaecodec-{weights_id.hex()}.pt"
    if path.is_file():
        return path
    return next((path for path in sorted(_weights_folder().glob("*.pt")) if weights_id_of(path.read_bytes()) == weights_id),
                None)


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
        **{name: torch.from_numpy(table) for name, table in KINDS[kind][1].frozen_tables(model).items()},
        "metadata": dict(metadata or {}),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def save_weights(model: HyperpriorModel, path: Path, metadata: dict | None = None) -> bytes:
    """Write a weights file atomically, and its runtime bundle beside it (same name, ``.npz``);
    returns the weights identifier."""
    data = serialize_weights(model, metadata)
    path = Path(path)
    _write(path, data)
    try:
        write_bundle(weights_from_bytes(data), path.with_suffix(BUNDLE_SUFFIX))
    except MissingExtra as missing:  # the weights are safe: a machine without onnx (a GPU lease) trains on
        warnings.warn(f"{path}: no runtime bundle written ({missing}); write it where onnx is installed: "
                      f"python -m vaecodec.model.weights {path}", RuntimeWarning, stacklevel=2)
    return weights_id_of(data)


def write_bundle(trained: TrainedModel, path: Path) -> None:
    """Write the runtime bundle of loaded weights, with the transforms' ONNX graphs."""
    with needs_extra(TORCH.needed_by("the runtime bundle's ONNX export")):
        import onnx  # noqa: F401 (torch's exporter needs it, and says so only once it runs)

        from vaecodec.model.onnx_export import analysis_graph, hyper_analysis_graph, synthesis_graph

    model = trained.model
    graphs = {"analysis": analysis_graph(model), "hyper_analysis": hyper_analysis_graph(model),
              "synthesis": synthesis_graph(model)}
    _write(Path(path), replace(trained.bundle, graphs=graphs).to_bytes())


def _layers(network: nn.Sequential) -> list[LayerData]:
    """A network of convolutions and LeakyReLUs as the integer layers' plain data: the weights as
    stored, in half precision (exact: they were loaded from it)."""
    layers: list[LayerData] = []
    for module in network:
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            transposed = isinstance(module, nn.ConvTranspose2d)
            spec = ConvSpec(module.stride[0], module.padding[0], module.output_padding[0] if transposed else 0, transposed)
            weight, bias = (value.detach().cpu().half().numpy() for value in (module.weight, module.bias))
            layers.append(("conv", weight, bias, spec))
        elif isinstance(module, nn.LeakyReLU):
            layers.append(("leaky_relu",))
        else:
            raise VaecodecError(f"a network has a layer ({type(module).__name__}) without an integer version")
    return layers


def bundle_of(model: HyperpriorModel, kind: str, tables: dict[str, np.ndarray], weights_id: bytes,
              metadata: dict) -> Bundle:
    """The runtime's bundle (without graphs) of a loaded model and its frozen tables."""
    arrays = dict(tables)
    arrays["log_gain"] = model.log_gain.detach().cpu().numpy().astype(np.float32)
    arrays["log_inverse_gain"] = model.log_inverse_gain.detach().cpu().numpy().astype(np.float32)
    networks = {"h_s": _layers(model.h_s)}
    if model.config.context_groups:
        networks.update({f"context.{k}": _layers(network) for k, network in enumerate(model.context)})
    return Bundle(weights_id, kind, model.config, metadata, arrays, networks)


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
    coder_class(kind)  # a clean error for a kind this version does not know
    network, coder = KINDS[kind]
    model = network(ModelConfig.from_dict(payload["config"]))
    model.load_state_dict({k: v.float() for k, v in payload["state_dict"].items()})
    model.eval()
    tables = {name: payload[name].numpy() for name in coder.frozen_table_names if name in payload}
    metadata = dict(payload.get("metadata", {}))
    bundle = bundle_of(model, kind, tables, weights_id_of(data), metadata)
    return TrainedModel(model, bundle, coder(bundle), weights_id_of(data), metadata)


def main(paths: list[str]) -> int:
    """Write the runtime bundle beside each weights file given (``python -m vaecodec.model.weights``)."""
    for name in paths:
        path = Path(name)
        write_bundle(load_weights(path), path.with_suffix(BUNDLE_SUFFIX))
        print(f"{path.with_suffix(BUNDLE_SUFFIX)}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
