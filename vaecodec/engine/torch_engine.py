"""The torch engine (the ``torch`` extra): the training networks in their coding forms
(``vaecodec.model.inference``), on any torch device, in fp32 or bf16 (``vaecodec.model.precision``).

It is the engine for a GPU (``--device cuda``), for weights given as a torch ``.pt`` file, and the
only one with gradients: the encode effort (``vaecodec.latent.sga``) searches a latent's symbols
through its synthesis, whichever engine analysed the image (``refine``).

On the CPU each strip runs with torch on one thread (oneDNN blocks its sums by the thread count,
so threads inside one convolution would make outputs depend on it); the strips share out the
threads (``vaecodec.engine.TiledTransforms``).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from functools import cached_property
from typing import Iterator

import numpy as np
import torch
from torch import nn

from vaecodec.allocator import keep_freed_memory
from vaecodec.effort import Schedule
from vaecodec.engine.tiles import SYNTHESIS_TILING, TiledTransforms
from vaecodec.errors import VaecodecError
from vaecodec.latent import sga
from vaecodec.latent.hyperprior import GainedLatent
from vaecodec.model.bundle import Bundle
from vaecodec.model.inference import analysis_for_coding, synthesis_for_coding
from vaecodec.model.precision import resolve_precision
from vaecodec.model.rate_levels import level_of
from vaecodec.model.weights import TrainedModel, load_weights, packaged_weights_path

# Activation blocks up to this size stay in the heap for reuse (vaecodec.allocator). 64 MiB (a
# full-width strip's largest activation is 57 MB) decoded 768x512 ~10 % faster, but fragmentation
# took a 24-megapixel encode from 1.7 to 2.2 GB; 32 MiB keeps it at 1.9 GB.
REUSED_BLOCK_BYTES = 32 << 20


def usable_device(device: str | torch.device) -> torch.device:
    """The torch device, if it can hold data on this machine: a typo or a missing GPU is a
    VaecodecError here rather than a RuntimeError in the middle of coding."""
    try:
        resolved = torch.device(device)
        torch.zeros(1, device=resolved).cpu()
    except (RuntimeError, AssertionError, NotImplementedError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VaecodecError(f"device {str(device)!r} cannot be used ({reason})") from None
    return resolved


class TorchTransforms(TiledTransforms):
    """A set of weights' transforms on a torch device; ``trained`` the loaded torch weights (by
    default the packaged ``.pt`` with the bundle's id)."""

    engine = "torch"

    def __init__(self, bundle: Bundle, device: str = "cpu", precision: str = "auto",
                 trained: TrainedModel | None = None) -> None:
        self.device = usable_device(device)
        self._dtype = resolve_precision(precision, self.device)
        self.precision = "bf16" if self._dtype == torch.bfloat16 else "fp32"
        if trained is None:
            path = packaged_weights_path(bundle.weights_id)
            if path is None:
                raise VaecodecError(f"no torch weights with id {bundle.weights_id.hex()} are installed; "
                                    "give the .pt file with --weights")
            trained = load_weights(path)
        keep_freed_memory(REUSED_BLOCK_BYTES)
        self.model = trained.model.to(self.device)
        self.analysis = analysis_for_coding(self.model.g_a, self._dtype)
        self.synthesis = synthesis_for_coding(self.model.g_s, self._dtype)

    @cached_property
    def synthesis_gradients(self) -> nn.Module:
        """The synthesis the encode effort searches with, for its gradients and for the values that
        choose between the plain and the found symbols (``synthesis_for_coding``), made on first use."""
        return synthesis_for_coding(self.model.g_s, self._dtype, exact_output=False)

    @contextmanager
    def _strips_at_once(self, pixels: int) -> Iterator[int]:
        if self.device.type != "cpu":
            yield 1
            return
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with super()._strips_at_once(pixels) as workers:
                yield workers
        finally:
            torch.set_num_threads(before)

    @torch.no_grad()
    def _through(self, network: nn.Module, x: np.ndarray) -> np.ndarray:
        return network(torch.from_numpy(np.ascontiguousarray(x)).to(self.device)).float().cpu().numpy()

    def _analysis(self, x: np.ndarray) -> np.ndarray:
        return self._through(self.analysis, x)

    def _hyper_analysis(self, y: np.ndarray) -> np.ndarray:
        return self._through(self.model.h_a, y)

    def _synthesis(self, y_hat: np.ndarray) -> np.ndarray:
        return self._through(self.synthesis, y_hat)

    def refine(self, pixels: np.ndarray, gained: GainedLatent, level_units: int, optimisation: Schedule,
               progress: sga.Progress | None) -> np.ndarray:
        """The symbols SGA and polishing choose (``vaecodec.latent.sga.refine``) for 3xHxW uint8
        ``pixels`` and their latent as the coder sees it at an integer rate level, for this image's
        rate + lambda * squared error there."""
        if self.model.config.distortion != "mse":
            raise VaecodecError(f"--effort above 1 lowers squared error, but these weights are tuned for "
                                f"{self.model.config.distortion}: use --effort 1 with them")
        lam = float(self.model.lambdas_at(torch.tensor([level_of(level_units)], device=self.device)))
        synthesis = sga.Synthesis(self.synthesis_gradients, *SYNTHESIS_TILING, scale=16)
        image = torch.tensor(pixels[None], device=self.device).float().div_(255)  # a copy: the pixels may be read-only
        with self._strips_at_once(pixels.shape[1] * pixels.shape[2]) as workers:
            symbols = sga.refine(synthesis, image, self._tensors(gained), lam, optimisation, workers, progress)
        return symbols.cpu().numpy()

    def _tensors(self, gained: GainedLatent) -> GainedLatent:
        """The coder's latent with its arrays as tensors on the device, for ``sga``; following other
        symbols goes through the coder's arrays."""

        def on_device(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

        def follow(symbols: torch.Tensor) -> GainedLatent:
            return self._tensors(replace(gained.follow(symbols.cpu().numpy()), follow=None))  # type: ignore[misc]

        tensors = GainedLatent(*(on_device(array) for array in (gained.residual, gained.offset, gained.gain,
                                                                 gained.inverse_gain, gained.scales)))
        return replace(tensors, follow=follow if gained.follow is not None else None)
