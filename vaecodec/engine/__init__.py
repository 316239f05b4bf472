"""The engines that run the float transforms: the one seam between the codec and its networks.

The codec (``vaecodec.codec``) hands an engine's ``Transforms`` 8-bit pixels and gets the latent
and the rounded hyper-latent back, and hands it a decoded latent and gets 8-bit pixels back; it
never sees which engine runs, nor tensors. Everything around the networks that every engine
shares is written once (``vaecodec.engine.tiles``): padding, strips, threads, rounding. An engine
supplies the three networks.

Engines, chosen by name (``ENGINES``, as ``vaecodec.latent.kinds`` picks coders):

- "onnxruntime" (``vaecodec.engine.onnx_engine``): the core install's engine, fp32, on the CPU,
  running the ONNX graphs of a weights bundle (``vaecodec.model.bundle``);
- "openvino" (``vaecodec.engine.openvino_engine``, the ``openvino`` extra): the same graphs on
  OpenVINO, on the CPU, in bf16 where the CPU has native bf16, else fp32; the fastest engine on
  the CPU in either (runs/engines/report.md: analysis and synthesis of kodim23 at one thread in
  44 and 69 ms bf16, 86 and 122 ms fp32, against ONNX Runtime's 109 and 168 ms and torch bf16's
  51-80 and 79-97 ms), but its package is 180 MB beside ONNX Runtime's 78 MB, hence an extra;
- "torch" (``vaecodec.engine.torch_engine``, the ``torch`` extra): the training networks in their
  coding forms, on any torch device, fp32 or bf16, and the only engine with the gradients the
  encode effort searches with.

"auto" (``open_transforms``) runs on the CPU on OpenVINO where it is installed (the fastest at
either precision), else on ONNX Runtime, or on torch when bf16 is asked for; and on torch for
another device or weights without graphs.

Whatever the engine, everything that selects coding probabilities is integer arithmetic in numpy
(``vaecodec.latent``), so a file made with one engine decodes with another to the same symbols.
"""

from __future__ import annotations

import importlib
import importlib.util
from contextlib import nullcontext

from vaecodec.engine.tiles import Transforms, check_precision
from vaecodec.errors import VaecodecError
from vaecodec.extras import OPENVINO, TORCH, Extra, needs_extra
from vaecodec.model.bundle import Bundle

# engine name -> (module, class, the extra that installs it, or None for the core install)
ENGINES: dict[str, tuple[str, str, Extra | None]] = {
    "onnxruntime": ("vaecodec.engine.onnx_engine", "OnnxTransforms", None),
    "openvino": ("vaecodec.engine.openvino_engine", "OpenVinoTransforms", OPENVINO),
    "torch": ("vaecodec.engine.torch_engine", "TorchTransforms", TORCH),
}


def engine_class(name: str, user: str | None = None) -> type:
    """The Transforms class of an engine, or a clean error: unknown, or its extra missing (the
    message names ``user``, by default the engine)."""
    if name not in ENGINES:
        raise VaecodecError(f"unknown engine {name!r}: choose one of auto, {', '.join(ENGINES)}")
    module, cls, extra = ENGINES[name]
    with needs_extra(extra.needed_by(user or f"the {name} engine")) if extra is not None else nullcontext():
        return getattr(importlib.import_module(module), cls)


def installed(module: str) -> bool:
    """Whether a top-level module can be imported, found without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # an import hook that refuses it; a module without a spec
        return False


def open_transforms(bundle: Bundle, engine: str = "auto", device: str = "cpu", precision: str = "auto",
                    trained: object | None = None, *, user: str | None = None) -> Transforms:
    """A set of weights' transforms on an engine. "auto" runs a bundle with graphs on the CPU on
    OpenVINO where it is installed (the fastest, in fp32 and bf16 alike), else on ONNX Runtime, or
    on torch for bf16; and everything else (another device, weights without graphs) on torch.
    ``trained``: loaded torch weights, for the torch engine. ``user``: what needs the engine, for
    the message when its extra is missing."""
    check_precision(precision)
    if engine == "auto":
        engine = auto_engine(device, bool(bundle.graphs), precision)
    return engine_class(engine, user)(bundle, device, precision, trained)


def auto_engine(device: str = "cpu", graphs: bool = True, precision: str = "auto") -> str:
    """The engine "auto" picks (see ``open_transforms``)."""
    if device != "cpu" or not graphs:
        return "torch"
    if installed("openvino"):
        return "openvino"
    return "torch" if precision == "bf16" else "onnxruntime"


def versions() -> str:
    """The engines, each with its version where it can be imported (found without importing it:
    the version from the package's metadata) or the extra that installs it, and the one "auto"
    runs on the CPU."""
    from importlib import metadata

    described, chosen = [], auto_engine()
    for name, (_, _, extra) in ENGINES.items():
        if not installed(name):
            described.append(f"{name} not installed ({extra.install})" if extra else f"{name} not installed")
            continue
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:  # importable without its metadata (a source tree)
            version = "(version unknown)"
        described.append(f"{name} {version}" + (" (auto's choice)" if name == chosen else ""))
    return ", ".join(described)
