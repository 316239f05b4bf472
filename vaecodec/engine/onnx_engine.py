"""The core install's engine: ONNX Runtime running a weights bundle's graphs, fp32, on the CPU.

Each graph gets one session, made on first use and kept for the process (making one takes time
and memory), with one intra-op thread: the shared strips (``vaecodec.engine.TiledTransforms``) are
the parallelism, several threads calling ``run`` on one session at once, which ONNX Runtime
allows. The synthesis graph has no ConvTranspose (``vaecodec.model.onnx_export``): its sub-pixel
convolutions run faster in ONNX Runtime and avoid the output-padding mismatches its trackers report.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import onnxruntime as ort

from vaecodec.allocator import keep_freed_memory
from vaecodec.engine.tiles import GraphTransforms, cpu_graphs
from vaecodec.threads import PARALLEL_MAX_PIXELS
from vaecodec.errors import VaecodecError
from vaecodec.model.bundle import Bundle

LEAN_BLOCK_BYTES = 8 << 20


class OnnxTransforms(GraphTransforms):
    """A bundle's transforms on ONNX Runtime."""

    engine = "onnxruntime"

    def __init__(self, bundle: Bundle, device: str = "cpu", precision: str = "auto",
                 trained: object | None = None) -> None:
        """``trained`` (torch weights) goes unused: the bundle's graphs are the transforms."""
        self._graphs = cpu_graphs(bundle, device, self.engine)
        if precision == "bf16":
            raise VaecodecError("the onnxruntime engine runs in fp32: use --precision fp32 or auto, or --engine torch")
        # glibc's mmap threshold fixed at 8 MiB (``vaecodec.allocator``): left to grow, it moved a
        # 24-megapixel encode's freed strips into a fragmented heap (1.03-1.05 GB peak against 0.94-0.96).
        keep_freed_memory(LEAN_BLOCK_BYTES)
        self._sessions: dict[tuple[str, bool], ort.InferenceSession] = {}
        self._lock = threading.Lock()
        self._local = threading.local()  # whether this thread's strips run on the lean sessions

    def _session(self, name: str, lean: bool) -> ort.InferenceSession:
        with self._lock:
            if (name, lean) not in self._sessions:
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                options.log_severity_level = 3  # errors only: its warnings are no user's business
                # Lean sessions, for large images: without the arena and the planned memory pattern a
                # strip's activations go back to the heap when it is done, for the entropy coding's
                # arrays to reuse (a 24-megapixel encode peaked at 1.37 GB with them, 1.05 GB without,
                # both under glibc's default thresholds; 0.94 GB with the threshold fixed, below).
                options.enable_cpu_mem_arena = options.enable_mem_pattern = not lean
                self._sessions[name, lean] = ort.InferenceSession(self._graphs[name], options,
                                                                  providers=["CPUExecutionProvider"])
            return self._sessions[name, lean]

    @contextmanager
    def _strips_at_once(self, pixels: int) -> Iterator[int]:
        """As every engine, and large images' strips (one at a time, in the calling thread) on the
        lean sessions."""
        previous = getattr(self._local, "lean", False)
        self._local.lean = pixels > PARALLEL_MAX_PIXELS
        try:
            with super()._strips_at_once(pixels) as workers:
                yield workers
        finally:
            self._local.lean = previous

    def _run(self, name: str, x: np.ndarray) -> np.ndarray:
        session = self._session(name, getattr(self._local, "lean", False))
        return session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]
