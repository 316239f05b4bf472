"""Where a .vae file's bits go, and what its latent holds: ``inspect(data)``.

The cost of every symbol is read from the file itself: the latent coder decodes the two streams
and prices each symbol under the very integer table it was coded with (``symbol_information``),
so the bits per 16x16 block add up to the file's streams within the ANS coder's few bytes of
overhead. An estimate from another pass (the float likelihoods of a re-encode, say) could not be
checked against the file like that.

This module computes arrays and numbers only; ``vaecodec.inspect_plots`` draws them with
matplotlib, which a plain install does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vaecodec.codec import Codec, get_codec
from vaecodec.entropy.tables import SCALE_TABLE
from vaecodec.errors import VaecodecError
from vaecodec.format.container import parse
from vaecodec.imageio import ImageLike, prepare
from vaecodec.metrics import psnr as psnr_of

BLOCK = 16  # image pixels per latent element, each way: the bit map's blocks
HYPER_BLOCK = 4  # latent elements per hyper-latent element, each way
PSNR_CAP = 60.0  # dB of a block decoded (almost) exactly, where the PSNR would be infinite


@dataclass
class Inspection:
    """A decoded .vae file with the bits of its symbols. Latent arrays are (M, h, w) over the image
    padded to multiples of 64 pixels; "steps" are the quantization steps symbols count (1/gain)."""

    width: int
    height: int
    mode: str
    quality: float
    weights_id: str
    file_bytes: int
    hyper_bytes: int  # the hyper-latent stream
    latent_bytes: int  # the latent stream
    image: np.ndarray  # the decoded colour, HxWx3 uint8
    latent_bits: np.ndarray  # (M, h, w): bits of each latent symbol
    hyper_bits: np.ndarray  # (N, h/4, w/4): bits of each hyper-latent symbol
    symbols: np.ndarray  # (M, h, w): the latent's integer symbols, in steps around the mean
    means: np.ndarray  # (M, h, w): the hyperprior's mean mu, in steps
    scales: np.ndarray  # (M, h, w): the scale sigma of the Gaussian table each symbol was coded under, in steps
    z: np.ndarray  # (N, h/4, w/4): the hyper-latent
    block_psnr: np.ndarray | None = None  # PSNR (dB) of each 16x16 block against the original, if given
    psnr: float | None = None  # of the whole image against the original, if given

    @property
    def block_bits(self) -> np.ndarray:
        """Bits per 16x16 block of the padded image (h, w): its latent symbols, and a sixteenth of
        the hyper-latent symbols of its 64x64 block. Sums to the information of both streams."""
        hyper = self.hyper_bits.sum(axis=0) / HYPER_BLOCK**2
        return self.latent_bits.sum(axis=0) + np.kron(hyper, np.ones((HYPER_BLOCK, HYPER_BLOCK)))

    @property
    def block_bpp(self) -> np.ndarray:
        """Bits per pixel of the blocks that overlap the image (ceil(H/16), ceil(W/16))."""
        return self.block_bits[: -(-self.height // BLOCK), : -(-self.width // BLOCK)] / BLOCK**2

    @property
    def channel_bits(self) -> np.ndarray:
        """Bits of each latent channel (M,)."""
        return self.latent_bits.sum(axis=(1, 2))

    def costliest_channels(self, count: int) -> np.ndarray:
        """The ``count`` latent channels that cost the most bits, costliest first."""
        return np.argsort(-self.channel_bits, kind="stable")[:count]

    def summary(self, channels: int = 8) -> dict[str, Any]:
        """The numbers, JSON-ready: sizes, information, shares, and the costliest channels."""
        hyper, latent = float(self.hyper_bits.sum()), float(self.latent_bits.sum())
        pixels = self.width * self.height
        blocks = self.block_bpp
        row, column = np.unravel_index(int(blocks.argmax()), blocks.shape)
        result: dict[str, Any] = {
            "width": self.width, "height": self.height, "mode": self.mode, "quality": self.quality,
            "weights_id": self.weights_id,
            "bytes": {"file": self.file_bytes, "hyper_stream": self.hyper_bytes, "latent_stream": self.latent_bytes,
                      "other": self.file_bytes - self.hyper_bytes - self.latent_bytes},
            "bits_per_pixel": 8 * self.file_bytes / pixels,
            "hyper_share": self.hyper_bytes / self.file_bytes,  # of the file
            "information_bits": {"hyper": hyper, "latent": latent,
                                 "outside_image": float(self.block_bits.sum() - blocks.sum() * BLOCK**2)},
            "coder_overhead_bits": 8 * (self.hyper_bytes + self.latent_bytes) - hyper - latent,
            "costliest_block": {"x": int(column) * BLOCK, "y": int(row) * BLOCK, "bits_per_pixel": float(blocks.max())},
            "channels": [{"channel": int(c), "bits": float(self.channel_bits[c]),
                          "share": float(self.channel_bits[c]) / (8 * self.file_bytes)}
                         for c in self.costliest_channels(channels)],
        }
        if self.psnr is not None:
            result["psnr"] = self.psnr if np.isfinite(self.psnr) else None  # None: decoded exactly
        return result


def inspect(data: bytes, original: ImageLike | None = None, *, codec: Codec | None = None) -> Inspection:
    """Decode .vae bytes and account for their bits (see ``Inspection``). With the ``original``
    image (of the file's size), also the PSNR of the whole and of every 16x16 block. ``codec``:
    the one to decode with (default: the shared CPU codec)."""
    codec = codec or get_codec()
    file = parse(data)
    reference = None
    if original is not None:
        reference = _colour(original)
        if reference.shape[:2] != (file.height, file.width):
            raise VaecodecError(f"the original is {reference.shape[1]}x{reference.shape[0]} but the file's image is "
                                f"{file.width}x{file.height}")
    found = codec.symbol_information(file)
    image = codec.pixels(file)
    gains = found["gains"][:, None, None]
    inspection = Inspection(
        file.width, file.height, file.mode, file.quality, file.weights_id.hex(), file.size, len(file.hyper_stream),
        len(file.latent_stream), image, found["latent_bits"][0], found["hyper_bits"][0], found["symbols"][0],
        found["means"][0] * gains, SCALE_TABLE[found["scale_indexes"][0]], found["z"][0])
    if reference is not None:
        inspection.psnr = psnr_of(reference, image)
        inspection.block_psnr = _block_psnr(reference, image)
    return inspection


def _colour(image: ImageLike) -> np.ndarray:
    """The colour an image is coded from, HxWx3 uint8 (as ``Codec.compress`` sees it)."""
    return prepare(image).pixels.transpose(1, 2, 0)


def _block_psnr(reference: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """PSNR in dB of each 16x16 block (partial blocks at the right and bottom edges), capped."""
    height, width = reference.shape[:2]
    error = (reference.astype(np.float64) - decoded.astype(np.float64)) ** 2
    rows, columns = -(-height // BLOCK), -(-width // BLOCK)
    padded = np.zeros((rows * BLOCK, columns * BLOCK))
    counts = np.zeros_like(padded)
    padded[:height, :width], counts[:height, :width] = error.mean(axis=2), 1
    mse = [a.reshape(rows, BLOCK, columns, BLOCK).sum(axis=(1, 3)) for a in (padded, counts)]
    mse = mse[0] / mse[1]
    return np.minimum(10 * np.log10(255**2 / np.maximum(mse, 1e-12)), PSNR_CAP)
