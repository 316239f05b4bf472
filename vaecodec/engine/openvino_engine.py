"""The OpenVINO engine (the ``openvino`` extra): a weights bundle's ONNX graphs on OpenVINO's CPU
plugin, in bf16 where the CPU has native bf16 (AVX512-BF16, AMX) and fp32 elsewhere or when asked.

It is the fastest engine on the CPU (runs/engines/report.md, kodim23 at one thread): 44 ms analysis
and 69 ms synthesis in bf16, against 51-80 and 79-97 ms for torch bf16 and 109 and 168 ms for ONNX
Runtime; and 86 and 122 ms in fp32. Its bf16 also runs the synthesis's last (RGB) layer in bf16,
which costs a little more quality than torch's bf16 (-0.051 dB at the top rate level against
-0.036); "fp32" (``INFERENCE_PRECISION_HINT`` f32) gives ONNX Runtime's pixels up to rounding.

Each inference runs on the codec's threads (``INFERENCE_NUM_THREADS``), the strips one at a time
(``vaecodec.engine.tiles.GraphTransforms``): its outputs were bit-identical at 1 to 4 threads in
both precisions. A model compiled with one stream runs one inference at a time (a second thread's
waits for the first), so each calling thread in flight (several codecs' users at once) gets a
compiled model of its own: compiled on first need, kept for the process, and handed back to a pool
after each call; a large image's are let go when it is done (their buffers fit its strips).
tests/test_openvino.py pins the bytes.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import openvino as ov

from vaecodec.engine.tiles import GraphTransforms, check_precision, cpu_graphs
from vaecodec.errors import VaecodecError
from vaecodec.model.bundle import Bundle
from vaecodec.threads import PARALLEL_MAX_PIXELS, threads

# OpenVINO's names of the precisions it may run in, as the codec names them.
_PRECISION_NAMES = {ov.Type.bf16: "bf16", ov.Type.f32: "fp32"}

_core: ov.Core | None = None
_core_lock = threading.Lock()


def core() -> ov.Core:
    """The process's OpenVINO runtime, made on first use."""
    global _core
    with _core_lock:
        if _core is None:
            _core = ov.Core()
        return _core


def native_bf16() -> bool:
    """Whether the CPU plugin runs bf16 by default: it does where the CPU has bf16 instructions."""
    return core().get_property("CPU", "INFERENCE_PRECISION_HINT") == ov.Type.bf16


class OpenVinoTransforms(GraphTransforms):
    """A bundle's transforms on OpenVINO, on the CPU."""

    engine = "openvino"

    def __init__(self, bundle: Bundle, device: str = "cpu", precision: str = "auto",
                 trained: object | None = None) -> None:
        """``trained`` (torch weights) goes unused: the bundle's graphs are the transforms."""
        graphs = cpu_graphs(bundle, device, self.engine)
        check_precision(precision)
        native = precision != "fp32" and native_bf16()
        if precision == "bf16" and not native:
            raise VaecodecError("bf16 is not native on this cpu device (it would run many times slower "
                                "than fp32); use --precision fp32 or auto")
        # Always an explicit precision: the plugin's default elsewhere may be f16 (ARM), whose range
        # the latents and the GDN's sums need not fit.
        # (and the threads per compiled model: ``_compiled``)
        self._config = {"NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False,
                        "INFERENCE_PRECISION_HINT": "bf16" if native else "f32"}
        self.precision = "bf16" if native else "fp32"
        self._graphs = graphs
        self._models: dict[str, ov.Model] = {}
        # Idle compiled models and their infer requests (a request needs its model kept alive).
        self._idle: dict[tuple[str, int], list[tuple[ov.CompiledModel, ov.InferRequest]]] = {}
        self._lock = threading.Lock()

    def _compiled(self, name: str, count: int) -> tuple[ov.CompiledModel, ov.InferRequest]:
        """A newly compiled model of a graph for ``count`` threads, with its infer request (called
        holding the lock)."""
        if name not in self._models:
            self._models[name] = core().read_model(self._graphs[name])
        compiled = core().compile_model(self._models[name], "CPU", {**self._config, "INFERENCE_NUM_THREADS": count})
        ran = compiled.get_property("INFERENCE_PRECISION_HINT")
        if ran not in _PRECISION_NAMES:
            raise VaecodecError(f"OpenVINO compiled the {name} graph for {ran}, not bf16 or f32; use --engine onnxruntime")
        self.precision = _PRECISION_NAMES[ran]  # what the plugin runs, whatever was asked
        return compiled, compiled.create_infer_request()

    @contextmanager
    def _strips_at_once(self, pixels: int) -> Iterator[int]:
        """As every engine; after a large image, the idle compiled models go: each keeps the
        buffers of the largest strip it ran (a 24-megapixel encode peaked at 1.11-1.15 GB with
        them, 1.00 GB without), and compiling again costs far less than such an image's coding."""
        try:
            with super()._strips_at_once(pixels) as workers:
                yield workers
        finally:
            if pixels > PARALLEL_MAX_PIXELS:
                with self._lock:
                    self._idle.clear()

    def _run(self, name: str, x: np.ndarray) -> np.ndarray:
        key = name, threads()
        with self._lock:
            idle = self._idle.setdefault(key, [])
            compiled, request = idle.pop() if idle else self._compiled(*key)
        try:
            # infer copies the output out of the request's buffer, which the next call reuses.
            return request.infer({"x": np.ascontiguousarray(x, dtype=np.float32)})[0]
        finally:
            with self._lock:
                self._idle.setdefault(key, []).append((compiled, request))
