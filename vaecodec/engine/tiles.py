"""What every engine's transforms share (``vaecodec.engine``): the image-level work around the
networks, written once.

``TiledTransforms`` pads to the model's stride, cuts strips of bounded size with margins
(``vaecodec.model.tiling``), runs them, rounds the hyper-latent and converts the synthesis to 8
bits; an engine supplies the three networks. Convolutions that block their sums by the thread
count would make a file decode to pixels (and an image encode to bytes) that depend on it
(tests/test_determinism.py), so an engine's networks run on one thread each, one strip per thread
(threads across strips fixed by the image's size change nothing), unless the engine's sums do not
depend on its thread count (``threads_per_strip``): then the strips run one at a time, each on
all the codec's threads, and small images in taller strips, so that fewer margins are computed
twice.
"""

from __future__ import annotations

from contextlib import contextmanager
from fractions import Fraction
from typing import TYPE_CHECKING, Iterator, Protocol

import numpy as np

from vaecodec.errors import VaecodecError
from vaecodec.model.config import STRIDE
from vaecodec.model.tiling import map_tiles
from vaecodec.threads import PARALLEL_MAX_PIXELS, threads_for

if TYPE_CHECKING:
    from vaecodec.model.bundle import Bundle

# ((rows, columns), margin) of the transforms' tiles, in their input's pixels: strips of 256 image
# rows, so memory stays bounded on large images (a 24-megapixel photo codes in under 1 GB) and, on
# an engine that runs one strip per thread, even a Kodak-sized photo's run on several. The margins
# cover the receptive fields (30 pixels; under 2 latents), so tiles give whole-image outputs (up to
# float rounding, as other shapes may take other convolution kernels).
ANALYSIS_TILING = ((256, 2048), 32)
HYPER_ANALYSIS_TILING = (256, 8)
SYNTHESIS_TILING = ((16, 128), 2)
# The tiles of images up to PARALLEL_MAX_PIXELS for an engine whose strips run one at a time
# (``threads_per_strip``): twice as tall, in the memory of the two strips the others run at once.
# kodim23 is then one strip: its analysis took 61-63 ms on ONNX Runtime's two threads, against
# 74 in two strips on one thread each (one run, alternating).
TALL_ANALYSIS_TILING = ((512, 2048), 32)
TALL_SYNTHESIS_TILING = ((32, 128), 2)

PRECISIONS = ("auto", "fp32", "bf16")  # of the float networks; every engine takes these names
GRAPHS = ("analysis", "hyper_analysis", "synthesis")  # a bundle's ONNX graphs, for the engines that run them

def cpu_graphs(bundle: Bundle, device: str, engine: str) -> dict[str, bytes]:
    """A bundle's ONNX graphs, for an engine that runs them on the CPU; a clean error for another
    device or a bundle without them."""
    if device != "cpu":
        raise VaecodecError(f"the {engine} engine runs on the CPU, not {device!r}: use --engine torch")
    missing = [name for name in GRAPHS if name not in bundle.graphs]
    if missing:
        raise VaecodecError(f"weights {bundle.weights_id.hex()} carry no ONNX graphs ({', '.join(missing)}); "
                            "write their bundle with python -m vaecodec.model.weights FILE.pt")
    return bundle.graphs


def check_precision(precision: str) -> str:
    """The precision, or a clean error naming the choices."""
    if precision not in PRECISIONS:
        raise VaecodecError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def latent_size(width: int, height: int) -> tuple[int, int]:
    """(rows, columns) of the latent of a width x height image: 1/16 of it, padded to multiples of 64."""
    return -(-height // STRIDE) * 4, -(-width // STRIDE) * 4


def to_8_bits(x: np.ndarray) -> np.ndarray:
    """Colour in [0, 1] as 8 bits: clipped, scaled and rounded (half to even)."""
    return np.round(np.clip(x, 0, 1) * np.float32(255)).astype(np.uint8)


class Transforms(Protocol):
    """The float transforms of one set of weights, on one engine."""

    engine: str  # its name in ENGINES
    precision: str  # "fp32" or "bf16"

    def analyse(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(latent y (1, M, h, w) float32, rounded hyper-latent z (1, N, h/4, w/4) int64) of 3xHxW uint8 pixels."""

    def synthesise(self, y_hat: np.ndarray, width: int, height: int) -> np.ndarray:
        """The HxWx3 uint8 colour of a decoded latent (1, M, h, w)."""


class TiledTransforms:
    """What every engine's transforms share (see the module docstring); an engine implements
    the three networks, each (1, C, h, w) float32 in and out, on one thread."""

    engine = ""
    precision = "fp32"
    # Whether the engine's networks give the same sums at any thread count, and so each run on all
    # the codec's threads, the strips one at a time; else one strip per thread.
    threads_per_strip = False

    def _analysis(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _hyper_analysis(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @contextmanager
    def _strips_at_once(self, pixels: int) -> Iterator[int]:
        """Yields how many strips to run at once; an engine sets its networks' threads here: one
        each, or all the codec's where ``threads_per_strip``."""
        yield 1 if self.threads_per_strip else threads_for(pixels)

    def _tilings(self, pixels: int) -> tuple[tuple, tuple]:
        """(analysis, synthesis) tiling of an image of this many pixels (it depends on nothing else)."""
        if self.threads_per_strip and pixels <= PARALLEL_MAX_PIXELS:
            return TALL_ANALYSIS_TILING, TALL_SYNTHESIS_TILING
        return ANALYSIS_TILING, SYNTHESIS_TILING

    def analyse(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        height, width = pixels.shape[-2:]
        # Padded to the model's stride tile by tile, and taken to floats per tile: at 24 megapixels
        # that keeps 0.5 GB of copies out of memory.
        padded_size = (height + -height % STRIDE, width + -width % STRIDE)

        def analysis(piece: np.ndarray) -> np.ndarray:
            return self._analysis(piece.astype(np.float32) / np.float32(255))

        with self._strips_at_once(width * height) as workers:
            y = map_tiles(analysis, pixels[None], Fraction(1, 16), *self._tilings(width * height)[0],
                          workers=workers, padded_size=padded_size)
            z = map_tiles(self._hyper_analysis, y, Fraction(1, 4), *HYPER_ANALYSIS_TILING, workers=workers)
        return y, np.round(z).astype(np.int64)

    def synthesise(self, y_hat: np.ndarray, width: int, height: int) -> np.ndarray:
        with self._strips_at_once(width * height) as workers:
            pixels = map_tiles(self._synthesis, np.asarray(y_hat, dtype=np.float32), Fraction(16),
                               *self._tilings(width * height)[1], finish=to_8_bits, workers=workers)
        return np.ascontiguousarray(pixels[0, :, :height, :width].transpose(1, 2, 0))


class GraphTransforms(TiledTransforms):
    """An engine that runs a bundle's ONNX graphs (``GRAPHS``): each network is one graph, input
    "x", output "y". ONNX Runtime and OpenVINO share out a convolution's outputs between their
    threads, never a sum: their outputs were bit-identical at 1 to 4 threads (both precisions of
    OpenVINO; tests/test_determinism.py checks 1 and 2), so their strips take all the threads."""

    threads_per_strip = True

    def _run(self, name: str, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _analysis(self, x: np.ndarray) -> np.ndarray:
        return self._run("analysis", x)

    def _hyper_analysis(self, y: np.ndarray) -> np.ndarray:
        return self._run("hyper_analysis", y)

    def _synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        return self._run("synthesis", y_hat)
