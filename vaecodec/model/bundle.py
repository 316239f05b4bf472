"""Weights as the coding runtime reads them: one ``.npz`` file of plain arrays, without torch or pickle.

A bundle holds everything coding needs from a set of weights:

- ``header``: JSON (UTF-8 bytes as a uint8 array): the bundle format, the weights id, the model
  kind, its config (``vaecodec.model.config``), the training metadata, the integer networks'
  layers (convolution shapes and the names of their arrays) and the names of the graphs;
- ``table/NAME``: the frozen integer coding tables and the per-level log-gains (float32);
- ``net/NETWORK/INDEX/weight`` and ``/bias``: the integer networks' weights as stored (half
  precision), which ``vaecodec.model.fixed_point`` quantizes exactly;
- ``graph/NAME``: the float transforms as ONNX graphs ("analysis", "hyper_analysis", "synthesis"),
  which an inference engine runs (``vaecodec.engine``).

The weights id is that of the torch weights file the bundle was made from
(``vaecodec.model.weights``): a ``.vae`` file names its weights by that id, whichever form decodes
it. Bundles are made by the training export (beside its ``.pt``) and by
``python -m vaecodec.model.weights`` for the shipped weights. A bundle made in memory for the torch
engine has no graphs.

Packaged bundles live in the package ``vaecodec.weights``: each tune's (``vaecodec.tunes``) under
its own name, and earlier releases' as ``vaecodec-<id>.npz``; a file's weights are found by the id
in their headers.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from vaecodec.errors import VaecodecError
from vaecodec.model.config import ModelConfig
from vaecodec.model.fixed_point import ConvSpec, LayerData
from vaecodec.tunes import TUNE_WEIGHTS, check_tune, tune_of

BUNDLE_FORMAT = "vaecodec-bundle-1"
BUNDLE_SUFFIX = ".npz"


@dataclass
class Bundle:
    """One set of weights ready for the coding runtime; see the module docstring."""

    weights_id: bytes
    kind: str
    config: ModelConfig
    metadata: dict
    arrays: dict[str, np.ndarray]
    networks: dict[str, list[LayerData]]
    graphs: dict[str, bytes] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """The ``.npz`` bytes of the bundle (written uncompressed: a wheel compresses it anyway)."""
        members: dict[str, np.ndarray] = {f"table/{name}": value for name, value in self.arrays.items()}
        networks: dict[str, list] = {}
        for name, layers in self.networks.items():
            described = []
            for index, layer in enumerate(layers):
                if layer[0] == "conv":
                    _, weight, bias, spec = layer
                    members[f"net/{name}/{index}/weight"] = np.asarray(weight, dtype=np.float16)
                    members[f"net/{name}/{index}/bias"] = np.asarray(bias, dtype=np.float16)
                    described.append({"conv": [spec.stride, spec.padding, spec.output_padding, spec.transposed]})
                else:
                    described.append(layer[0])
            networks[name] = described
        for name, graph in self.graphs.items():
            members[f"graph/{name}"] = np.frombuffer(graph, dtype=np.uint8)
        header = {"format": BUNDLE_FORMAT, "weights_id": self.weights_id.hex(), "kind": self.kind,
                  "config": self.config.to_dict(), "metadata": self.metadata, "networks": networks,
                  "graphs": sorted(self.graphs)}
        members["header"] = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez(buffer, **members)
        return buffer.getvalue()


def _header(archive: np.lib.npyio.NpzFile) -> dict:
    try:
        header = json.loads(archive["header"].tobytes())
    except (KeyError, ValueError, UnicodeDecodeError):
        raise VaecodecError("not a vaecodec weights bundle") from None
    if not isinstance(header, dict) or header.get("format") != BUNDLE_FORMAT:
        raise VaecodecError("not a vaecodec weights bundle (or one of a newer format; upgrade vaecodec)")
    return header


def bundle_from_bytes(data: bytes) -> Bundle:
    """Parse the bytes of a bundle (no pickle: ``allow_pickle=False``)."""
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise VaecodecError("not a vaecodec weights bundle") from None
    with archive:
        header = _header(archive)
        arrays = {name.removeprefix("table/"): archive[name] for name in archive.files if name.startswith("table/")}
        networks: dict[str, list[LayerData]] = {}
        for name, described in header["networks"].items():
            layers: list[LayerData] = []
            for index, layer in enumerate(described):
                if isinstance(layer, dict):
                    stride, padding, output_padding, transposed = layer["conv"]
                    layers.append(("conv", archive[f"net/{name}/{index}/weight"], archive[f"net/{name}/{index}/bias"],
                                   ConvSpec(stride, padding, output_padding, bool(transposed))))
                else:
                    layers.append((layer,))
            networks[name] = layers
        graphs = {name: archive[f"graph/{name}"].tobytes() for name in header["graphs"]}
    return Bundle(bytes.fromhex(header["weights_id"]), header["kind"], ModelConfig.from_dict(header["config"]),
                  dict(header["metadata"]), arrays, networks, graphs)


def load_bundle(path: Path) -> Bundle:
    """Load a bundle file, with its path in any error."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise VaecodecError(f"cannot read weights {path}: {exc.strerror or exc}") from None
    try:
        return bundle_from_bytes(data)
    except (VaecodecError, KeyError, TypeError, ValueError) as exc:
        reason = exc if isinstance(exc, VaecodecError) else "not a vaecodec weights bundle"
        raise VaecodecError(f"{path}: {reason}") from None


def weights_folder() -> Path:
    """Where the packaged weights are installed (the package ``vaecodec.weights``)."""
    return Path(str(resources.files("vaecodec.weights")))


def tune_bundle_path(tune: str) -> Path:
    """The packaged bundle of a tune's weights."""
    return weights_folder() / f"{TUNE_WEIGHTS[check_tune(tune)]}{BUNDLE_SUFFIX}"


def _file_header(path: Path) -> dict | None:
    """A bundle file's header (read alone), or None if it is no bundle."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return _header(archive)
    except (VaecodecError, OSError, ValueError, KeyError, EOFError):
        return None


def is_bundle(path: Path) -> bool:
    """Whether a file is a weights bundle (rather than torch weights, or no weights at all)."""
    return _file_header(path) is not None


def bundle_id(path: Path) -> bytes | None:
    """The weights id in a bundle file's header, or None if it is no bundle."""
    header = _file_header(path)
    return None if header is None else bytes.fromhex(header["weights_id"])


def packaged_bundle_path(weights_id: bytes) -> Path | None:
    """The packaged bundle with this weights id (a tune's, or an earlier release's), if any."""
    folder = weights_folder()
    named = folder / f"vaecodec-{weights_id.hex()}{BUNDLE_SUFFIX}"
    if named.is_file():
        return named
    return next((path for path in sorted(folder.glob(f"*{BUNDLE_SUFFIX}")) if bundle_id(path) == weights_id), None)


def packaged_tune(weights_id: bytes) -> str | None:
    """The tune of the packaged weights with this id (for ``vaecodec info``), or None if not installed."""
    path = packaged_bundle_path(weights_id)
    header = None if path is None else _file_header(path)
    return None if header is None else tune_of(ModelConfig.from_dict(header["config"]).distortion)
