"""The core install's engine: ONNX Runtime running a weights bundle's graphs, fp32, on the CPU.

Each graph gets one session, made on first use and kept for the process (making one takes time
and memory), with one intra-op thread: the shared strips (``vaecodec.engine.TiledTransforms``) are
the parallelism, several threads calling ``run`` on one session at once, which ONNX Runtime
allows. The synthesis graph has no ConvTranspose (``vaecodec.model.onnx_export``): its sub-pixel
convolutions run faster in ONNX Runtime and avoid the output-padding mismatches its trackers report.
"""

from __future__ import annotations

import threading

import numpy as np
import onnxruntime as ort

from vaecodec.engine.tiles import TiledTransforms
from vaecodec.errors import VaecodecError
from vaecodec.model.bundle import Bundle

GRAPHS = ("analysis", "hyper_analysis", "synthesis")


class OnnxTransforms(TiledTransforms):
    """A bundle's transforms on ONNX Runtime."""

    engine = "onnxruntime"

    def __init__(self, bundle: Bundle, device: str = "cpu", precision: str = "auto",
                 trained: object | None = None) -> None:
        """``trained`` (torch weights) goes unused: the bundle's graphs are the transforms."""
        if device != "cpu":
            raise VaecodecError(f"the onnxruntime engine runs on the CPU, not {device!r}: use --engine torch")
        if precision == "bf16":
            raise VaecodecError("the onnxruntime engine runs in fp32: use --precision fp32 or auto, or --engine torch")
        missing = [name for name in GRAPHS if name not in bundle.graphs]
        if missing:
            raise VaecodecError(f"weights {bundle.weights_id.hex()} carry no ONNX graphs ({', '.join(missing)}); "
                                "write their bundle with python -m vaecodec.model.weights FILE.pt")
        self._graphs = bundle.graphs
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._lock = threading.Lock()

    def _session(self, name: str) -> ort.InferenceSession:
        with self._lock:
            if name not in self._sessions:
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                options.log_severity_level = 3  # errors only: its warnings are no user's business
                self._sessions[name] = ort.InferenceSession(self._graphs[name], options,
                                                            providers=["CPUExecutionProvider"])
            return self._sessions[name]

    def _run(self, name: str, x: np.ndarray) -> np.ndarray:
        return self._session(name).run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]

    def _analysis(self, x: np.ndarray) -> np.ndarray:
        return self._run("analysis", x)

    def _hyper_analysis(self, y: np.ndarray) -> np.ndarray:
        return self._run("hyper_analysis", y)

    def _synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        return self._run("synthesis", y_hat)
