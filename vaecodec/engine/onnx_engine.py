"""The core install's engine: ONNX Runtime running a weights bundle's graphs, fp32, on the CPU.

Each graph gets one session per thread count, made on first use and kept for the process (making
one takes time and memory). Its convolutions share out their outputs, never a sum, between the
intra-op threads, so they give the same results at any thread count (tests/test_determinism.py
checks the bytes and pixels at 1 and 2): each strip (``vaecodec.engine.TiledTransforms``) runs on
the codec's threads, the strips one at a time. The threads sleep when done rather than spin, as
the integer networks run next. The synthesis graph has no ConvTranspose
(``vaecodec.model.onnx_export``): its sub-pixel convolutions run faster in ONNX Runtime and avoid
the output-padding mismatches its trackers report.
"""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import onnxruntime as ort

from vaecodec.allocator import keep_freed_memory
from vaecodec.engine.tiles import GraphTransforms, cpu_graphs
from vaecodec.errors import VaecodecError
from vaecodec.model.bundle import Bundle
from vaecodec.threads import PARALLEL_MAX_PIXELS, threads

LEAN_BLOCK_BYTES = 8 << 20


@functools.cache
def _lean_arena() -> None:
    """The process's CPU arena for the lean sessions, made once: it grows by what is asked
    (kSameAsRequested) rather than by doubling, so a strip's peak is what its tensors take."""
    memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, 1, -1, -1))  # no limit, kSameAsRequested, defaults


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
        self._sessions: dict[tuple[str, bool, int], ort.InferenceSession] = {}
        self._lock = threading.Lock()
        self._local = threading.local()  # whether this thread's image is large

    def _session(self, name: str, lean: bool, threads: int) -> ort.InferenceSession:
        with self._lock:
            if (name, lean, threads) not in self._sessions:
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                options.log_severity_level = 3  # errors only: its warnings are no user's business
                # Lean sessions, for large images: no planned memory pattern (its buffer for a whole
                # strip stayed beside the entropy coding: a 24-megapixel encode peaked at 1.37 GB, 1.05
                # without, both under glibc's default thresholds), and the process's arena that grows
                # by what is asked (``_lean_arena``), emptied after each strip (``_run``): without any
                # arena that encode took 17 s (each activation paged in afresh), with it 12 s, both
                # peaking at 0.93 GB.
                options.enable_mem_pattern = not lean
                if lean:
                    _lean_arena()
                    options.add_session_config_entry("session.use_env_allocators", "1")
                self._sessions[name, lean, threads] = ort.InferenceSession(self._graphs[name], options,
                                                                           providers=["CPUExecutionProvider"])
            return self._sessions[name, lean, threads]

    @contextmanager
    def _strips_at_once(self, pixels: int) -> Iterator[int]:
        """As every engine, noting whether the image is large (its strips' memory: ``_run``)."""
        previous = getattr(self._local, "large", False)
        self._local.large = pixels > PARALLEL_MAX_PIXELS
        try:
            with super()._strips_at_once(pixels) as workers:
                yield workers
        finally:
            self._local.large = previous

    def _run(self, name: str, x: np.ndarray) -> np.ndarray:
        """One strip, on all the codec's threads; a large image's on a lean session, its arena
        emptied after the strip, for the entropy coding to reuse the memory."""
        lean, options = getattr(self._local, "large", False), None
        if lean:
            options = ort.RunOptions()
            options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        session = self._session(name, lean, threads())
        return session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)}, options)[0]
