"""The ``.vae`` file format, versions 1 and 2: the one place that defines it.

All integers are little-endian. A file is a 40-byte header, the payload, and a CRC32 trailer::

    offset size field
    0      4    magic            b"VAEC"
    4      1    version          1 or 2 (below); a reader refuses larger versions
    5      1    colour mode      0 = RGB, 1 = L, 2 = RGBA, 3 = LA (L: grayscale, coded as RGB
                                 with equal channels and decoded to one channel)
    6      2    quality          quality x 100 (0..10000): selects the rate level of the weights
    8      4    width            pixels, 1..65535, and width x height <= 2**27
    12     4    height           pixels, 1..65535
    16     8    weights id       first 8 bytes of the SHA-256 of the weights file that coded it
    24     4    hyper length     bytes of the hyper-latent stream (a multiple of 4)
    28     4    latent length    bytes of the latent stream (a multiple of 4)
    32     4    alpha length     bytes of the alpha plane; non-zero exactly for RGBA and LA
    36     4    ICC length       bytes of the ICC colour profile; 0: none (sRGB is assumed)
    40     ...  hyper-latent stream, latent stream, alpha plane, ICC profile
    end-4  4    CRC32            zlib.crc32 of every byte before it

The alpha plane is stored losslessly as a PNG file (8-bit grayscale, width x height). The ICC
profile is the original image's, byte for byte, for the decoder to attach to its output.

Decoding (see ``vaecodec.codec``): the image is padded (edge replication) to multiples of 64,
giving a latent of M x ceil(H/64)*4 x ceil(W/64)*4 and a hyper-latent of N x ceil(H/64) x
ceil(W/64), with M and N from the weights. Each stream is the sequence of 32-bit words of a
constriction ANS coder (``stack.AnsCoder``). Symbols are coded under integer tables stored in the
weights file (rows of counts summing to a power of two; entry k of a row of 2R+1 entries is the
value k - R; constriction ``Categorical(counts / sum, perfect=False)``), grouped by table in
increasing table order and, within a table, in raster (channel, row, column) order
(``vaecodec.entropy.coder``):

1. Hyper-latent: every element z[c, i, j] is coded as z - offset[c] under table c of the
   weights' hyper-latent tables (2**16 counts per row).
2. Entropy parameters, in integer arithmetic only (``vaecodec.model.fixed_point``,
   ``vaecodec.latent.hyperprior``): the hyper-synthesis network, with weights and activations in
   fixed point, maps z to a mean mu and a fixed-point log-scale per latent element; the quality
   (x 100, the header's integer) selects per-channel integer log-gains at its rate level T (below)
   that are added to the log-scales; the latent element's table index is the smallest i with
   -565 + 32 i >= log-scale (units of 1/256 natural-log; ``vaecodec.entropy.tables``), clamped
   to 0..63.
3. Latent: every element's symbol s is coded under the weights' Gaussian table of its index
   (2**24 counts per row, values -1023..1023).
   The latent is y_hat = (s + mu * g) * g', with the float per-channel gains g (encoder) and g'
   (decoder) at the rate level t = T / 10000; the synthesis network maps it to the padded image,
   which is cropped to width x height and rounded to 8 bits.

Version 1 files are those of weights of model kind "hyperprior" (the weights file's ``kind``;
absent means "hyperprior"): their latent stream is the one sequence of step 3. Version 2 files are
those of weights of kind "channel-context": the latent's channels fall into the weights' context
groups (``context_groups``), coded one group after another in the one latent stream, each group
grouped by table and in raster order as above; before a group, its means and log-scales are
corrected from the groups before it by the integer rule of ``vaecodec.latent.context`` (its
module docstring), and steps 2 and 3 use the corrected values. A version 1 reader refuses version
2 files by their version byte.

The rate level of quality Q (the header's integer) is T = L + Q * ((levels - 1) * 10000 - L) // 10000
in units of 1/10000 level, with L = 100 x the weights' lowest level in hundredths (their
``lowest_level_hundredths``, 0 when absent). The per-level log-gains (float and integer) are
linear in T between the levels k and k+1 around it (k = clamp(T // 10000, 0, levels - 2)),
so levels below 0 extrapolate the first two; the integer ones are L_k + (L_(k+1) - L_k) *
(T - 10000 k) // 10000, rounding down. The code of this rule is ``vaecodec.model.rate_levels``.

Both streams must be consumed exactly. A decoder may refuse, before decoding it, a stream whose
length in bits plus 64 is less than half the information of its symbols at their tables' most
probable values (``vaecodec.entropy.coder``): images code to longer streams (1.25 to 40 times
that information, measured), and ANS would decode a short one to an image of whatever size the
header claims. A file decodes only with the weights its id names (the same bytes decode to a
different image under other weights); vaecodec keeps every set it has shipped
(``vaecodec.model.weights``), and refuses a file whose weights it does not have.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from itertools import accumulate

from vaecodec.errors import VaecodecError
from vaecodec.model.rate_levels import QUALITY_STEPS

MAGIC = b"VAEC"
VERSION = 2  # the newest version this module reads and writes; files are written at their coder's
MAX_DIMENSION = 65535
MAX_PIXELS = 1 << 27  # 134 megapixels: refused before anything is allocated for them
COLOUR_MODES = ("RGB", "L", "RGBA", "LA")
DEFAULT_QUALITY = 75  # what an encoder writes when no quality is asked for
_HEADER = struct.Struct("<4sBBHII8sIIII")
_CRC = struct.Struct("<I")
HEADER_SIZE = _HEADER.size
OVERHEAD = HEADER_SIZE + _CRC.size


class FormatError(VaecodecError):
    """The bytes are not a valid .vae file of a version this reader understands."""


@dataclass(frozen=True)
class VaeFile:
    """The fields of a .vae file; ``to_bytes`` and ``parse`` convert exactly."""

    mode: str
    width: int
    height: int
    quality_units: int  # the header's integer: quality x 100
    weights_id: bytes
    hyper_stream: bytes
    latent_stream: bytes
    alpha_plane: bytes = b""
    icc_profile: bytes = b""
    version: int = 1  # the stream layout: 1 for a "hyperprior" coder, 2 for a "channel-context" one

    @property
    def quality(self) -> float:
        """The quality, 0 to 100."""
        return self.quality_units / 100

    def to_bytes(self) -> bytes:
        if not 1 <= self.version <= VERSION:
            raise FormatError(f"invalid .vae format version {self.version}")
        if self.mode not in COLOUR_MODES:
            raise FormatError(f"unsupported colour mode {self.mode!r}")
        _check_dimensions(self.width, self.height)
        _check_alpha(self.mode, self.alpha_plane)
        header = _HEADER.pack(
            MAGIC, self.version, COLOUR_MODES.index(self.mode), self.quality_units, self.width, self.height,
            self.weights_id, len(self.hyper_stream), len(self.latent_stream), len(self.alpha_plane),
            len(self.icc_profile),
        )
        body = b"".join([header, self.hyper_stream, self.latent_stream, self.alpha_plane, self.icc_profile])
        return body + _CRC.pack(zlib.crc32(body))

    @property
    def size(self) -> int:
        return OVERHEAD + sum(map(len, (self.hyper_stream, self.latent_stream, self.alpha_plane, self.icc_profile)))

    @property
    def bits_per_pixel(self) -> float:
        return 8 * self.size / (self.width * self.height)


def dimension_problem(width: int, height: int) -> str | None:
    """Why the format cannot hold an image of this size, or None if it can."""
    if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
        return f"image dimensions {width}x{height} are outside 1..{MAX_DIMENSION}"
    if width * height > MAX_PIXELS:
        return f"image of {width}x{height} pixels is larger than the {MAX_PIXELS / 1e6:.0f} megapixels supported"
    return None


def _check_dimensions(width: int, height: int) -> None:
    problem = dimension_problem(width, height)
    if problem is not None:
        raise FormatError(problem)


def _check_alpha(mode: str, alpha_plane: bytes) -> None:
    if bool(alpha_plane) != mode.endswith("A"):
        raise FormatError(f"colour mode {mode} {'needs' if mode.endswith('A') else 'cannot have'} an alpha plane")


def parse(data: bytes) -> VaeFile:
    """Read and check a .vae file; raises FormatError saying what is wrong."""
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise FormatError("not a .vae file (wrong magic bytes)")
    if len(data) < OVERHEAD:
        raise FormatError("truncated .vae file (shorter than its header)")
    magic, version, mode, quality, width, height, weights_id, *lengths = _HEADER.unpack_from(data)
    if version > VERSION:
        raise FormatError(f".vae format version {version} is newer than this vaecodec reads ({VERSION}); upgrade vaecodec")
    if version < 1:
        raise FormatError(f"invalid .vae format version {version}")
    if HEADER_SIZE + sum(lengths) + _CRC.size != len(data):
        raise FormatError("truncated or padded .vae file (stream lengths do not match the file size)")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[: -_CRC.size]) != crc:
        raise FormatError("corrupt .vae file (checksum mismatch)")
    if mode >= len(COLOUR_MODES):
        raise FormatError(f"unknown colour mode {mode}")
    if quality > QUALITY_STEPS:
        raise FormatError(f"invalid quality {quality / 100}")
    _check_dimensions(width, height)
    ends = list(accumulate(lengths, initial=HEADER_SIZE))
    hyper, latent, alpha, icc = (data[start:end] for start, end in zip(ends[:-1], ends[1:]))
    _check_alpha(COLOUR_MODES[mode], alpha)
    return VaeFile(COLOUR_MODES[mode], width, height, quality, weights_id, hyper, latent, alpha, icc, version)
