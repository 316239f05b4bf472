"""Images to .vae bytes and back: the model, the coder and the format put together.

``Codec`` loads the weights once and keeps them on one device; the module-level ``compress`` and
``decompress`` in ``vaecodec`` use a shared CPU instance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vaecodec.entropy.coder import decode_hyper, decode_latent, encode_hyper, encode_latent
from vaecodec.entropy.tables import scale_indexes
from vaecodec.errors import VaecodecError
from vaecodec.format.container import VaeFile, parse
from vaecodec.imageio import ImageLike, to_tensor
from vaecodec.model.hyperprior import HyperpriorModel
from vaecodec.model.weights import TrainedModel, load_weights

DEFAULT_QUALITY = 75


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

    def __init__(self, weights: str | Path | TrainedModel | None = None, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        trained = weights if isinstance(weights, TrainedModel) else load_weights(weights)
        self.model: HyperpriorModel = trained.model.to(self.device)
        self.weights_id = trained.weights_id
        self.metadata = trained.metadata
        self._z_offsets = trained.z_offsets
        self._z_counts = trained.z_counts
        self._z_offsets_tensor = torch.as_tensor(trained.z_offsets, dtype=torch.float32, device=self.device)

    # -- public API ---------------------------------------------------------------------------

    def compress(self, image: ImageLike, quality: float = DEFAULT_QUALITY) -> bytes:
        """Encode a PIL image, a uint8 array (HxWx3 or HxW) or a CxHxW float tensor in [0, 1]."""
        x, mode = to_tensor(image)
        return self._encode(x, check_quality(quality), mode).to_bytes()

    def decompress(self, data: bytes) -> Image.Image:
        """Decode .vae bytes to a PIL image (RGB, or L for grayscale originals)."""
        file = parse(data)
        pixels = self._decode(file)[0].mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        image = Image.fromarray(np.ascontiguousarray(pixels), "RGB")
        return image.convert("L") if file.mode == "L" else image

    def compress_tensor(self, x: torch.Tensor, quality: float = DEFAULT_QUALITY) -> bytes | list[bytes]:
        """Encode a CxHxW tensor (one file) or an NxCxHxW batch (a list of files); C is 1 or 3."""
        if x.dim() == 4:
            return [self.compress_tensor(item, quality) for item in x]
        return self.compress(x, quality)

    def decompress_tensor(self, data: bytes | list[bytes]) -> torch.Tensor:
        """Decode to a float tensor in [0, 1] on the codec's device: 3xHxW, or Nx3xHxW for a list."""
        if isinstance(data, (list, tuple)):
            return torch.stack([self.decompress_tensor(item) for item in data])
        return self._decode(parse(data))[0]

    # -- coding ---------------------------------------------------------------------------------

    def _level(self, quality: float) -> torch.Tensor:
        return torch.tensor([quality / 100 * (self.model.levels - 1)], device=self.device)

    @torch.no_grad()
    def _encode(self, x: torch.Tensor, quality: float, mode: str) -> VaeFile:
        height, width = x.shape[-2:]
        if not (1 <= width <= 65535 and 1 <= height <= 65535):
            raise VaecodecError(f"image dimensions {width}x{height} are outside 1..65535")
        stride = HyperpriorModel.STRIDE
        padded = F.pad(x[None].to(self.device), (0, -width % stride, 0, -height % stride), mode="replicate")
        y = self.model.g_a(padded)
        z = self.model.h_a(y)
        radius = (self._z_counts.shape[1] - 1) // 2
        offsets = self._z_offsets_tensor[None, :, None, None]
        z_symbols = (torch.round(z) - offsets).clamp(-radius, radius)
        hyper_stream = encode_hyper(z_symbols[0].flatten(1).cpu().numpy().astype(np.int64), self._z_counts)
        means, indexes, gain, _ = self._latent_distribution(z_symbols + offsets, quality)
        symbols = torch.round(y * gain - means)
        latent_stream = encode_latent(symbols.cpu().numpy(), indexes)
        return VaeFile(mode, width, height, quality, self.weights_id, hyper_stream, latent_stream)

    def _latent_distribution(self, z_hat: torch.Tensor, quality: float):
        """Gained means, scale-table indexes (numpy) and the gains for a decoded hyper-latent."""
        means, scales = self.model.hyper_parameters(z_hat)
        gain, inverse_gain = self.model.gains(self._level(quality))
        indexes = scale_indexes(scales * gain).cpu().numpy()
        return means * gain, indexes, gain, inverse_gain

    @torch.no_grad()
    def _decode(self, file: VaeFile) -> torch.Tensor:
        if file.weights_id != self.weights_id:
            raise VaecodecError(
                f"file was made with weights {file.weights_id.hex()}, but the loaded weights are "
                f"{self.weights_id.hex()}; decode it with the vaecodec version that wrote it"
            )
        stride = HyperpriorModel.STRIDE
        rows, cols = -(-file.height // stride), -(-file.width // stride)
        channels = self._z_counts.shape[0]
        z_symbols = decode_hyper(file.hyper_stream, self._z_counts, rows * cols)
        z_hat = torch.as_tensor(z_symbols + self._z_offsets[:, None], dtype=torch.float32, device=self.device)
        means, indexes, _, inverse_gain = self._latent_distribution(z_hat.view(1, channels, rows, cols), file.quality)
        symbols = torch.as_tensor(decode_latent(file.latent_stream, indexes), dtype=torch.float32, device=self.device)
        x_hat = self.model.g_s((symbols + means) * inverse_gain)
        return x_hat[:, :, : file.height, : file.width].clamp(0, 1)
