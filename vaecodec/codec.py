"""Images to .vae bytes and back: the transforms, the latent coder and the format put together.

``Codec`` loads the weights once and keeps them on one device, at one precision; it runs the
float transforms (in strips, on threads), hands the latents to the weights' latent coder
(``vaecodec.latent``) and builds or reads the file. ``get_codec`` shares one codec per process
for equal arguments: ``vaecodec.compress``/``decompress``, the Pillow plugin and unpickled codecs
use it.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn

from vaecodec import ratecontrol
from vaecodec.allocator import keep_freed_memory
from vaecodec.effort import DEFAULT_EFFORT, Schedule, schedule, size_problem
from vaecodec.errors import VaecodecError
from vaecodec.format.container import DEFAULT_QUALITY, VaeFile, dimension_problem, parse
from vaecodec.imageio import ImageLike, decode_alpha, encode_alpha, prepare, to_8_bits
from vaecodec.latent.hyperprior import PreparedLatent
from vaecodec.latent import sga
from vaecodec.metrics import psnr as psnr_of
from vaecodec.model.hyperprior import HyperpriorModel
from vaecodec.model.inference import analysis_for_coding, synthesis_for_coding
from vaecodec.model.precision import resolve_precision
from vaecodec.model.rate_levels import level_of, level_units, quality_units
from vaecodec.model.tiling import map_tiles
from vaecodec.model.weights import TrainedModel, load_weights, packaged_weights_path

# ((rows, columns), margin) of the transforms' tiles, in their input's pixels: strips of 256 image
# rows, so memory stays bounded on large images (a 24-megapixel photo codes in well under 2 GB)
# and the strips of even a Kodak-sized photo run on several threads. The margins cover the
# receptive fields (30 pixels; under 2 latents), so tiles give whole-image outputs (up to float
# rounding, as other shapes may take other convolution kernels).
ANALYSIS_TILING = ((256, 2048), 32)
HYPER_ANALYSIS_TILING = (256, 8)
SYNTHESIS_TILING = ((16, 128), 2)
# Activation blocks up to this size stay in the heap for reuse (vaecodec.allocator). 64 MiB (a
# full-width strip's largest activation is 57 MB) decoded 768x512 ~10 % faster, but fragmentation
# took a 24-megapixel encode from 1.7 to 2.2 GB; 32 MiB keeps it at 1.9 GB.
REUSED_BLOCK_BYTES = 32 << 20
# Above this many pixels the strips run one at a time: each strip in flight costs memory (a second
# thread took a 24-megapixel encode from 1.7 to 2.6 GB), and memory is what bounds large photos.
PARALLEL_MAX_PIXELS = 8_000_000


def _bits_to_bytes(bpp: float, pixels: int) -> int:
    if not isinstance(bpp, (int, float)) or not bpp > 0:
        raise VaecodecError(f"bpp must be a positive number, got {bpp!r}")
    return int(bpp * pixels / 8)


@contextmanager
def _one_cpu_thread_per_tile(device: torch.device, pixels: int) -> Iterator[int]:
    """Yields how many tiles to run at once: on the CPU, torch's thread count (one for the largest
    images), each tile on one thread. oneDNN blocks its sums by the thread count, so threads inside
    one convolution would make a file decode to pixels (and an image encode to bytes) that depend
    on it (tests/test_determinism.py); threads across fixed tiles do not."""
    threads = torch.get_num_threads()
    if device.type != "cpu":
        yield 1
        return
    torch.set_num_threads(1)
    try:
        yield threads if pixels <= PARALLEL_MAX_PIXELS else 1
    finally:
        torch.set_num_threads(threads)


def latent_size(width: int, height: int) -> tuple[int, int]:
    """(rows, columns) of the latent of a width x height image: 1/16 of it, padded to multiples of 64."""
    stride = HyperpriorModel.STRIDE
    return -(-height // stride) * 4, -(-width // stride) * 4


def _unit_range(pixels: torch.Tensor, device: torch.device) -> torch.Tensor:
    """8-bit colour as the transforms take it: float in [0, 1] on ``device``."""
    return pixels.to(device).float().div_(255)


@dataclass
class AnalysedImage:
    """An image after the analysis transforms: everything about its coding but the quality."""

    mode: str
    width: int
    height: int
    latent: PreparedLatent
    alpha_plane: bytes  # PNG of the alpha channel, or empty
    icc_profile: bytes
    pixels: torch.Tensor  # the colour that was coded, 3xHxW uint8 on the CPU (for rate control and effort)


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


def get_codec(weights: str | Path | None = None, device: str | torch.device = "cpu", precision: str = "auto") -> Codec:
    """A codec for these weights, device and precision, loaded once per process.

    Equal arguments spelled differently (``"cpu"`` or ``torch.device("cpu")``, str or Path) share
    one codec, so unpickled codecs reuse the one the process already has.
    """
    resolved = usable_device(device)
    return _shared(None if weights is None else Path(weights), resolved, resolve_precision(precision, resolved))


@lru_cache(maxsize=4)
def _shared(weights: Path | None, device: torch.device, dtype: torch.dtype) -> Codec:
    return Codec(weights, device, "bf16" if dtype == torch.bfloat16 else "fp32")


class _Transforms:
    """One set of weights made ready to code: the networks in their coding forms, and the coder."""

    def __init__(self, trained: TrainedModel, device: torch.device, dtype: torch.dtype) -> None:
        self.model = trained.model.to(device)
        self.coder = trained.coder
        self.weights_id = trained.weights_id
        self.metadata = trained.metadata
        self.analysis = analysis_for_coding(self.model.g_a, dtype)
        self.synthesis = synthesis_for_coding(self.model.g_s, dtype)
        self._dtype = dtype

    @cached_property
    def synthesis_gradients(self) -> nn.Module:
        """The synthesis the encode effort searches with, for its gradients and for the values that
        choose between the plain and the found symbols (``synthesis_for_coding``), made on first use."""
        return synthesis_for_coding(self.model.g_s, self._dtype, exact_output=False)

    def level_units(self, quality: int) -> int:
        """The rate level of a header quality for these weights (``vaecodec.model.rate_levels``)."""
        return level_units(quality, self.model.levels, self.model.config.lowest_level_hundredths)


class Codec:
    """A loaded model that compresses images to .vae bytes and decompresses them.

    ``weights``: a weights file or a loaded ``TrainedModel`` (default: the shipped weights).
    ``device``: where the networks run ("cpu", "cuda", a torch.device); entropy coding always
    runs on the CPU. ``precision``: of the float transforms, "fp32", "bf16", or "auto" (bf16
    where the device runs it natively; ``vaecodec.model.precision``). Files decode at any
    precision whatever the one they were made at.
    """

    # -- pickling: a codec travels as where its weights come from, not as its networks ----------

    def __getstate__(self) -> dict[str, object]:
        """A few bytes, so a Dataset holding a codec goes to DataLoader workers cheaply."""
        if isinstance(self._weights_source, TrainedModel):
            raise VaecodecError("a Codec made from a loaded TrainedModel cannot be pickled; make it from a weights file")
        return {"weights": self._weights_source, "device": str(self.device), "weights_id": self.weights_id,
                "precision": self.precision}

    def __setstate__(self, state: dict[str, object]) -> None:
        """Share the process's codec for these weights (``get_codec``): one load each."""
        shared = get_codec(state["weights"], state["device"], state.get("precision", "auto"))  # type: ignore[arg-type]
        if shared.weights_id != state["weights_id"]:
            raise VaecodecError(f"weights {state['weights'] or '(shipped)'} changed since this codec was pickled")
        self.__dict__.update(shared.__dict__)

    def __init__(self, weights: str | Path | TrainedModel | None = None, device: str | torch.device = "cpu",
                 precision: str = "auto") -> None:
        self.device = usable_device(device)
        self._dtype = resolve_precision(precision, self.device)
        self.precision = "bf16" if self._dtype == torch.bfloat16 else "fp32"
        keep_freed_memory(REUSED_BLOCK_BYTES)
        self._weights_source = weights  # what __getstate__ sends instead of the networks
        trained = weights if isinstance(weights, TrainedModel) else load_weights(weights)
        self._main = _Transforms(trained, self.device, self._dtype)
        self._earlier: dict[bytes, _Transforms] = {}  # other shipped weights, loaded for files that name them
        self.model: HyperpriorModel = self._main.model
        self.weights_id = trained.weights_id
        self.metadata = trained.metadata

    # -- public API ---------------------------------------------------------------------------

    def compress(
        self,
        image: ImageLike,
        quality: float | None = None,
        *,
        size: int | None = None,
        bpp: float | None = None,
        psnr: float | None = None,
        effort: int = DEFAULT_EFFORT,
        progress: sga.Progress | None = None,
    ) -> bytes:
        """Encode a PIL image, a uint8 array (HxW, HxWx3, HxWx4) or a CxHxW float tensor in [0, 1].

        Give at most one of: ``quality`` (0-100, default 75); ``size``, the largest file in bytes
        (the highest quality that fits); ``bpp``, the same as a size in bits per pixel; ``psnr``,
        the lowest quality whose decoded image reaches this many dB. See ``vaecodec.imageio`` for
        what is kept of each image mode (alpha, ICC profiles, ...).

        ``effort`` (1-9, default 1) spends encode time for a smaller file at the same quality: above 1
        the latent is optimised for this image (``vaecodec.effort``); the file decodes as any other.
        With a target, the quality is searched plainly and then refined (``vaecodec.ratecontrol``).
        ``progress``, if given, is called with (done, in all) after each step or pass of the optimisation.
        """
        targets = {"quality": quality, "size": size, "bpp": bpp, "psnr": psnr}
        given = [name for name, value in targets.items() if value is not None]
        if len(given) > 1:
            raise VaecodecError(f"give one of quality, size, bpp and psnr, not {' and '.join(given)}")
        units = quality_units(DEFAULT_QUALITY if quality is None else quality)
        optimisation = schedule(effort)
        analysed = self._analyse(image)
        problem = size_problem(effort, analysed.width, analysed.height)
        if problem is not None:
            raise VaecodecError(problem)

        def encode(units: int) -> bytes:
            return self._encode(analysed, units).to_bytes()

        def refine(units: int) -> bytes:
            return self._encode(self._refined(analysed, units, optimisation, progress), units).to_bytes()

        refined = refine if optimisation.passes_back else None

        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
                raise VaecodecError(f"size must be a positive number of bytes, got {size!r}")
            return ratecontrol.fit_size(encode, size, refined)
        if bpp is not None:
            return ratecontrol.fit_size(encode, _bits_to_bytes(bpp, analysed.width * analysed.height), refined)
        if psnr is not None:
            if not isinstance(psnr, (int, float)) or not 0 < psnr < 100:
                raise VaecodecError(f"psnr must be a number of dB between 0 and 100, got {psnr!r}")
            reference = analysed.pixels.permute(1, 2, 0).numpy()
            return ratecontrol.fit_psnr(encode, lambda data: psnr_of(reference, self._pixels(parse(data))), psnr,
                                        refined)
        return (refined or encode)(units)

    def decompress(self, data: bytes) -> Image.Image:
        """Decode .vae bytes to a PIL image of the original's mode (RGB, L, RGBA or LA).

        The original's ICC profile, if it had one, is in ``image.info["icc_profile"]``.
        """
        file = parse(data)
        alpha = decode_alpha(file.alpha_plane, file.width, file.height) if file.alpha_plane else None
        image = Image.fromarray(self._pixels(file), "RGB")
        if file.mode.startswith("L"):
            image = image.convert("L")
        if alpha is not None:
            image.putalpha(alpha)
        if file.icc_profile:
            image.info["icc_profile"] = file.icc_profile
        return image

    def compress_tensor(self, x: torch.Tensor, quality: float = DEFAULT_QUALITY,
                        effort: int = DEFAULT_EFFORT) -> bytes | list[bytes]:
        """Encode a CxHxW tensor (one file) or an NxCxHxW batch (a list of files); C is 1 or 3."""
        if x.dim() == 4:
            return [self.compress_tensor(item, quality, effort) for item in x]
        return self.compress(x, quality, effort=effort)

    def decompress_tensor(self, data: bytes | list[bytes]) -> torch.Tensor:
        """Decode to a float tensor in [0, 1] on the codec's device: 3xHxW, or Nx3xHxW for a list.

        The values are the decoded 8-bit pixels over 255, exactly what :meth:`decompress` gives.
        """
        if isinstance(data, (list, tuple)):
            return torch.stack([self.decompress_tensor(item) for item in data])
        return self._decode(parse(data))[0].float().div_(255)

    # -- coding ---------------------------------------------------------------------------------

    def _transforms_for(self, weights_id: bytes) -> _Transforms:
        """The loaded weights, or the earlier shipped ones a file names (kept in the package)."""
        if weights_id == self.weights_id:
            return self._main
        if weights_id not in self._earlier:
            path = packaged_weights_path(weights_id)
            if path is None:
                raise VaecodecError(
                    f"file was made with weights {weights_id.hex()}, but the loaded weights are "
                    f"{self.weights_id.hex()}; decode it with the vaecodec version that wrote it"
                )
            self._earlier[weights_id] = _Transforms(load_weights(path), self.device, self._dtype)
        return self._earlier[weights_id]

    def _file_transforms(self, file: VaeFile) -> _Transforms:
        """The weights a file names, if its format version is the one their coder writes."""
        transforms = self._transforms_for(file.weights_id)
        if file.version != transforms.coder.format_version:
            raise VaecodecError(f"file is .vae version {file.version}, but its weights write version "
                                f"{transforms.coder.format_version}: the file is damaged")
        return transforms

    @torch.no_grad()
    def _analyse(self, image: ImageLike) -> AnalysedImage:
        """The quality-independent half of encoding (transforms, hyper-latent, hyper stream)."""
        prepared = prepare(image)
        pixels = prepared.pixels
        height, width = pixels.shape[-2:]
        problem = dimension_problem(width, height)
        if problem is not None:
            raise VaecodecError(problem)
        # Padded to the model's stride tile by tile, and taken to floats per tile: at 24 megapixels
        # that keeps 0.5 GB of copies out of memory.
        stride = HyperpriorModel.STRIDE
        padded_size = (height + -height % stride, width + -width % stride)

        def analysis(piece: torch.Tensor) -> torch.Tensor:
            return self._main.analysis(_unit_range(piece, self.device))

        with _one_cpu_thread_per_tile(self.device, width * height) as workers:
            y = map_tiles(analysis, pixels[None], Fraction(1, 16), *ANALYSIS_TILING, workers=workers,
                          padded_size=padded_size)
            z = map_tiles(self.model.h_a, y, Fraction(1, 4), *HYPER_ANALYSIS_TILING, workers=workers)
            z = torch.round(z).cpu().to(torch.int64)
        alpha = encode_alpha(prepared.alpha) if prepared.alpha is not None else b""
        return AnalysedImage(prepared.mode, width, height, self._main.coder.prepare(y, z), alpha,
                             prepared.icc_profile, pixels)

    def _refined(self, analysed: AnalysedImage, quality: int, optimisation: Schedule,
                 progress: sga.Progress | None) -> AnalysedImage:
        """The image with its latent's symbols at a header quality chosen by SGA (``vaecodec.latent.sga``),
        for this image's rate + lambda * distortion at that quality."""
        units = self._main.level_units(quality)
        coder = self._main.coder
        gained = coder.gained(analysed.latent, units)
        lam = float(self.model.lambdas_at(torch.tensor([level_of(units)], device=self.device)))
        synthesis = sga.Synthesis(self._main.synthesis_gradients, *SYNTHESIS_TILING, scale=16)
        with _one_cpu_thread_per_tile(self.device, analysed.width * analysed.height) as workers:
            symbols = sga.refine(synthesis, _unit_range(analysed.pixels[None], self.device), gained, lam, optimisation,
                                 workers, progress)
        return replace(analysed, latent=coder.with_symbols(analysed.latent, gained, symbols))

    def _encode(self, analysed: AnalysedImage, quality: int) -> VaeFile:
        """The quality-dependent half of encoding: the latent stream at a header quality, and the file."""
        latent_stream = self._main.coder.encode(analysed.latent, self._main.level_units(quality))
        return VaeFile(analysed.mode, analysed.width, analysed.height, quality, self.weights_id,
                       analysed.latent.hyper_stream, latent_stream, analysed.alpha_plane, analysed.icc_profile,
                       self._main.coder.format_version)

    def _pixels(self, file: VaeFile) -> np.ndarray:
        """The decoded colour of a file as HxWx3 uint8 (RGB, grayscale as three equal channels)."""
        return np.ascontiguousarray(self._decode(file)[0].permute(1, 2, 0).cpu().numpy())

    @torch.no_grad()
    def _decode(self, file: VaeFile) -> torch.Tensor:
        """The decoded colour as (1, 3, H, W) uint8 on the codec's device."""
        return self._synthesise(self._decoded_latent(file), file.width, file.height, file.weights_id)

    def _decoded_latent(self, file: VaeFile) -> torch.Tensor:
        """A file's decoded latent y_hat (1, M, h, w) on the codec's device, which ``_synthesise``
        turns into its pixels (``vaecodec.generative`` blends two files' latents in between)."""
        transforms = self._file_transforms(file)
        return transforms.coder.decode(file.hyper_stream, file.latent_stream, latent_size(file.width, file.height),
                                       transforms.level_units(file.quality_units), self.device)

    def _symbol_information(self, file: VaeFile) -> dict[str, np.ndarray]:
        """A file's symbols with the bits each cost, from the tables it was coded with (the latent
        coder's ``symbol_information``; ``vaecodec.inspection`` draws them)."""
        transforms = self._file_transforms(file)
        return transforms.coder.symbol_information(file.hyper_stream, file.latent_stream,
                                                   latent_size(file.width, file.height),
                                                   transforms.level_units(file.quality_units))

    def _sampled_latent(self, width: int, height: int, quality: int, rng: np.random.Generator) -> torch.Tensor:
        """A latent for a width x height image drawn from the loaded weights' prior at a header
        quality (the latent coder's ``sample``; ``vaecodec.generative``)."""
        return self._main.coder.sample(latent_size(width, height), self._main.level_units(quality), rng, self.device)

    @torch.no_grad()
    def _synthesise(self, y_hat: torch.Tensor, width: int, height: int, weights_id: bytes | None = None) -> torch.Tensor:
        """The colour (1, 3, height, width) uint8 of a latent, by the synthesis transform of the
        weights ``weights_id`` (default: the loaded ones), exactly as a file decodes."""
        transforms = self._transforms_for(weights_id or self.weights_id)
        with _one_cpu_thread_per_tile(self.device, width * height) as workers:
            pixels = map_tiles(transforms.synthesis, y_hat, Fraction(16), *SYNTHESIS_TILING, finish=to_8_bits,
                               workers=workers)
        return pixels[:, :, :height, :width]
