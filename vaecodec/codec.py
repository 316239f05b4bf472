"""Images to .vae bytes and back: the model, the coder and the format put together.

``Codec`` loads the weights once and keeps them on one device; the module-level ``compress`` and
``decompress`` in ``vaecodec`` use a shared CPU instance.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vaecodec import ratecontrol
from vaecodec.allocator import keep_freed_memory
from vaecodec.errors import VaecodecError
from vaecodec.format.container import DEFAULT_QUALITY, VaeFile, dimension_problem, parse
from vaecodec.imageio import ImageLike, decode_alpha, encode_alpha, prepare
from vaecodec.model.fixed_point import QUALITY_UNITS, level_units
from vaecodec.model.hyperprior import HyperpriorModel
from vaecodec.model.inference import analysis_for_coding, synthesis_for_coding
from vaecodec.model.tiling import map_tiles
from vaecodec.model.weights import TrainedModel, load_weights

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


def _to_8_bits(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul_(255).round_().to(torch.uint8)


@dataclass
class Analysis:
    """An image after the analysis transforms: everything about its coding but the quality."""

    mode: str
    width: int
    height: int
    y: torch.Tensor  # the latent, before gains
    hyper_stream: bytes
    means: torch.Tensor  # latent means before gains (exact, from the integer hyper-synthesis)
    log_scales: torch.Tensor  # fixed-point log-scales before gains
    alpha_plane: bytes  # PNG of the alpha channel, or empty
    icc_profile: bytes
    pixels: torch.Tensor  # the colour that was coded, 3xHxW in [0, 1] on the CPU (for rate control)


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


def check_quality(quality: float) -> float:
    if not isinstance(quality, (int, float)) or not 0 <= quality <= 100:
        raise VaecodecError(f"quality must be a number from 0 to 100, got {quality!r}")
    return round(float(quality), 2)


class Codec:
    """A loaded model that compresses images to .vae bytes and decompresses them.

    ``weights``: a weights file or a loaded ``TrainedModel`` (default: the shipped weights).
    ``device``: where the networks run ("cpu", "cuda", a torch.device); entropy coding always
    runs on the CPU.
    """

    # -- pickling: a codec travels as where its weights come from, not as its networks ----------

    def __getstate__(self) -> dict[str, object]:
        """A few bytes, so a Dataset holding a codec goes to DataLoader workers cheaply."""
        if isinstance(self._weights_source, TrainedModel):
            raise VaecodecError("a Codec made from a loaded TrainedModel cannot be pickled; make it from a weights file")
        return {"weights": self._weights_source, "device": str(self.device), "weights_id": self.weights_id}

    def __setstate__(self, state: dict[str, object]) -> None:
        """Share the process's codec for these weights (``vaecodec.api.get_codec``): one load each."""
        from vaecodec.api import get_codec  # vaecodec.api builds on this module

        shared = get_codec(state["weights"], state["device"])  # type: ignore[arg-type]
        if shared.weights_id != state["weights_id"]:
            raise VaecodecError(f"weights {state['weights'] or '(shipped)'} changed since this codec was pickled")
        self.__dict__.update(shared.__dict__)

    def __init__(self, weights: str | Path | TrainedModel | None = None, device: str | torch.device = "cpu") -> None:
        self.device = usable_device(device)
        keep_freed_memory(REUSED_BLOCK_BYTES)
        self._weights_source = weights  # what __getstate__ sends instead of the networks
        trained = weights if isinstance(weights, TrainedModel) else load_weights(weights)
        self.model: HyperpriorModel = trained.model.to(self.device)
        self._analysis = analysis_for_coding(self.model.g_a)
        self._synthesis = synthesis_for_coding(self.model.g_s)
        self.weights_id = trained.weights_id
        self.metadata = trained.metadata
        self._z_offsets = torch.from_numpy(trained.z_offsets)
        self._hyper_tables = trained.hyper_tables
        self._latent_tables = trained.latent_tables
        self._entropy_parameters = trained.entropy_parameters

    # -- public API ---------------------------------------------------------------------------

    def compress(
        self,
        image: ImageLike,
        quality: float | None = None,
        *,
        size: int | None = None,
        bpp: float | None = None,
        psnr: float | None = None,
    ) -> bytes:
        """Encode a PIL image, a uint8 array (HxW, HxWx3, HxWx4) or a CxHxW float tensor in [0, 1].

        Give at most one of: ``quality`` (0-100, default 75); ``size``, the largest file in bytes
        (the highest quality that fits); ``bpp``, the same as a size in bits per pixel; ``psnr``,
        the lowest quality whose decoded image reaches this many dB. See ``vaecodec.imageio`` for
        what is kept of each image mode (alpha, ICC profiles, ...).
        """
        targets = {"quality": quality, "size": size, "bpp": bpp, "psnr": psnr}
        given = [name for name, value in targets.items() if value is not None]
        if len(given) > 1:
            raise VaecodecError(f"give one of quality, size, bpp and psnr, not {' and '.join(given)}")
        quality = check_quality(DEFAULT_QUALITY if quality is None else quality)
        analysis = self.analyse(image)
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
                raise VaecodecError(f"size must be a positive number of bytes, got {size!r}")
            return ratecontrol.fit_size(self, analysis, size)
        if bpp is not None:
            return ratecontrol.fit_size(self, analysis, _bits_to_bytes(bpp, analysis.width * analysis.height))
        if psnr is not None:
            if not isinstance(psnr, (int, float)) or not 0 < psnr < 100:
                raise VaecodecError(f"psnr must be a number of dB between 0 and 100, got {psnr!r}")
            reference = analysis.pixels.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            return ratecontrol.fit_psnr(self, analysis, reference, psnr)
        return self._code(analysis, quality).to_bytes()

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

    def compress_tensor(self, x: torch.Tensor, quality: float = DEFAULT_QUALITY) -> bytes | list[bytes]:
        """Encode a CxHxW tensor (one file) or an NxCxHxW batch (a list of files); C is 1 or 3."""
        if x.dim() == 4:
            return [self.compress_tensor(item, quality) for item in x]
        return self.compress(x, quality)

    def decoded_pixels(self, data: bytes) -> np.ndarray:
        """The decoded colour of a file as HxWx3 uint8 (RGB, grayscale as three equal channels)."""
        return self._pixels(parse(data))

    def _pixels(self, file: VaeFile) -> np.ndarray:
        return np.ascontiguousarray(self._decode(file)[0].permute(1, 2, 0).cpu().numpy())

    def decompress_tensor(self, data: bytes | list[bytes]) -> torch.Tensor:
        """Decode to a float tensor in [0, 1] on the codec's device: 3xHxW, or Nx3xHxW for a list.

        The values are the decoded 8-bit pixels over 255, exactly what :meth:`decompress` gives.
        """
        if isinstance(data, (list, tuple)):
            return torch.stack([self.decompress_tensor(item) for item in data])
        return self._decode(parse(data))[0].float().div_(255)

    # -- coding ---------------------------------------------------------------------------------

    def _level_units(self, quality: float) -> int:
        """The rate level of a quality (x QUALITY_UNITS), exactly as the header's integer gives it."""
        return level_units(quality, self.model.levels, self.model.config.lowest_level_hundredths)

    def _level(self, quality: float) -> torch.Tensor:
        """The model's continuous rate level for a quality."""
        return torch.tensor([self._level_units(quality) / QUALITY_UNITS], device=self.device)

    @torch.no_grad()
    def analyse(self, image: ImageLike) -> Analysis:
        """The quality-independent half of encoding (transforms, hyper-latent): reuse it to try
        several qualities, as rate control does, with :meth:`encode_analysis`."""
        prepared = prepare(image)
        x = prepared.pixels
        height, width = x.shape[-2:]
        problem = dimension_problem(width, height)
        if problem is not None:
            raise VaecodecError(problem)
        stride = HyperpriorModel.STRIDE
        padded = F.pad(x[None].to(self.device), (0, -width % stride, 0, -height % stride), mode="replicate")
        with _one_cpu_thread_per_tile(self.device, width * height) as workers:
            y = map_tiles(self._analysis, padded, Fraction(1, 16), *ANALYSIS_TILING, workers=workers)
            del padded
            z = map_tiles(self.model.h_a, y, Fraction(1, 4), *HYPER_ANALYSIS_TILING, workers=workers)
            z = torch.round(z).cpu().to(torch.int64)
        radius = self._hyper_tables.radius
        offsets = self._z_offsets[None, :, None, None]
        z_symbols = (z - offsets).clamp(-radius, radius)
        hyper_stream = self._hyper_tables.encode(z_symbols.numpy(), self._hyper_table_indexes(z.shape))
        means, log_scales = self._entropy_parameters(z_symbols + offsets)
        alpha = encode_alpha(prepared.alpha) if prepared.alpha is not None else b""
        return Analysis(prepared.mode, width, height, y, hyper_stream, means.to(self.device), log_scales,
                        alpha, prepared.icc_profile, x.cpu())

    def encode_analysis(self, analysis: Analysis, quality: float = DEFAULT_QUALITY) -> bytes:
        """The .vae bytes of an analysed image at a quality (same bytes as :meth:`compress`)."""
        return self._code(analysis, check_quality(quality)).to_bytes()

    @torch.no_grad()
    def _code(self, analysis: Analysis, quality: float) -> VaeFile:
        """The quality-dependent half of encoding: gains, quantization and the latent stream."""
        gain, _ = self.model.gains(self._level(quality))
        symbols = torch.round(analysis.y * gain - analysis.means * gain).cpu().numpy()
        indexes = self._entropy_parameters.indexes(analysis.log_scales, self._level_units(quality))
        latent_stream = self._latent_tables.encode(symbols, indexes.numpy())
        return VaeFile(analysis.mode, analysis.width, analysis.height, quality, self.weights_id,
                       analysis.hyper_stream, latent_stream, analysis.alpha_plane, analysis.icc_profile)

    def _hyper_table_indexes(self, shape: torch.Size) -> np.ndarray:
        """Each hyper-latent element is coded under its channel's table."""
        return np.broadcast_to(np.arange(shape[1])[None, :, None, None], tuple(shape))

    @torch.no_grad()
    def _decode(self, file: VaeFile) -> torch.Tensor:
        """The decoded colour as (1, 3, H, W) uint8 on the codec's device."""
        if file.weights_id != self.weights_id:
            raise VaecodecError(
                f"file was made with weights {file.weights_id.hex()}, but the loaded weights are "
                f"{self.weights_id.hex()}; decode it with the vaecodec version that wrote it"
            )
        stride = HyperpriorModel.STRIDE
        shape = torch.Size((1, len(self._z_offsets), -(-file.height // stride), -(-file.width // stride)))
        z_symbols = self._hyper_tables.decode(file.hyper_stream, self._hyper_table_indexes(shape))
        means, log_scales = self._entropy_parameters(torch.from_numpy(z_symbols) + self._z_offsets[None, :, None, None])
        indexes = self._entropy_parameters.indexes(log_scales, self._level_units(file.quality))
        symbols = torch.from_numpy(self._latent_tables.decode(file.latent_stream, indexes.numpy()))
        del log_scales, indexes
        gain, inverse_gain = self.model.gains(self._level(file.quality))
        means = means.to(self.device)
        y_hat = (symbols.to(self.device, torch.float32) + means * gain) * inverse_gain
        del symbols, means
        with _one_cpu_thread_per_tile(self.device, file.width * file.height) as workers:
            pixels = map_tiles(self._synthesis, y_hat, Fraction(16), *SYNTHESIS_TILING, finish=_to_8_bits, workers=workers)
        return pixels[:, :, : file.height, : file.width]
