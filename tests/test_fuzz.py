"""Fuzzing the .vae parser and decoder: damaged bytes raise VaecodecError and nothing else.

Seeds are small valid files coded at test time with the shipped weights (a .vae file names the
weights that coded it, so committed seeds would go stale when they change). Mutations flip bits,
overwrite, cut and insert bytes, splice two seeds and rewrite header fields; for the decoder the
CRC is recomputed, so the damage gets past the checksum to the entropy decoder, the integer
hyper-synthesis and the alpha plane's PNG reader.

Inputs that once crashed are kept in ``tests/corpus/`` as regression files. They are stored with
a zero weights id, which the test replaces by the loaded weights' id (resealing the CRC), so they
reach the decoder whatever weights ship.

The number of examples is bounded for CI (500 per test: seconds). A longer run, with hypothesis's
database keeping what it finds in ``.hypothesis/`` and a count of how the examples ended::

    VAECODEC_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz.py --hypothesis-show-statistics

A failure prints the minimal input: after the fix, save it in ``tests/corpus/`` (weights id zeroed).
"""

from __future__ import annotations

import io
import os
import re
import struct
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from PIL import Image

import vaecodec
from vaecodec.errors import VaecodecError
from vaecodec.format.container import HEADER_SIZE, MAGIC, FormatError, parse
from vaecodec.imageio import read_first_frame

from conftest import reseal

EXAMPLES = int(os.environ.get("VAECODEC_FUZZ_EXAMPLES", "500"))
# The deadline flags an input that makes decoding slow (a small file claiming a huge image);
# it is generous because training often shares this project's two cores with the tests.
fuzz = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=10), suppress_health_check=[HealthCheck.too_slow])

CORPUS = Path(__file__).parent / "corpus"
WEIGHTS_ID = slice(16, 24)
# Offset and struct code of the header's integer fields (the table in vaecodec.format.container).
FIELDS = {"version": (4, "B"), "mode": (5, "B"), "quality": (6, "H"), "width": (8, "I"), "height": (12, "I"),
          "hyper length": (24, "I"), "latent length": (28, "I"), "alpha length": (32, "I"), "ICC length": (36, "I")}

Draw = Callable[[st.SearchStrategy], object]


@pytest.fixture(scope="module")
def seeds(photo: Image.Image) -> list[bytes]:
    """Small valid files of every kind of content: RGB, RGBA (a PNG alpha plane), LA with an ICC profile."""
    rgb = photo.crop((0, 0, 16, 16))
    rgba = photo.crop((20, 20, 60, 44))
    rgba.putalpha(Image.fromarray(np.tile(np.arange(0, 240, 6, dtype=np.uint8), (24, 1))))
    la = photo.crop((50, 40, 74, 56)).convert("LA")
    la.info["icc_profile"] = b"not really an ICC profile"
    return [vaecodec.compress(image, quality=50) for image in (rgb, rgba, la)]


@dataclass
class Mutator:
    """Draws damage to a file's body; byte positions from ``low`` on (HEADER_SIZE: the payload)."""

    draw: Draw
    seeds: list[bytes]
    low: int = 0

    def position(self, body: bytearray) -> int:
        return self.draw(st.integers(min(self.low, len(body)), max(len(body) - 1, 0)))

    def flip(self, body: bytearray) -> bytearray:
        if len(body) > self.low:
            body[self.position(body)] ^= 1 << self.draw(st.integers(0, 7))
        return body

    def scramble(self, body: bytearray) -> bytearray:
        """A run of bytes overwritten with random ones (the size stays right)."""
        start = self.position(body)
        run = self.draw(st.binary(min_size=1, max_size=16))[: len(body) - start]
        return body[:start] + run + body[start + len(run) :]

    def truncate(self, body: bytearray) -> bytearray:
        return body[: self.position(body)]

    def delete(self, body: bytearray) -> bytearray:
        start = self.position(body)
        return body[:start] + body[start + self.draw(st.integers(1, 16)) :]

    def insert(self, body: bytearray) -> bytearray:
        start = self.position(body)
        return body[:start] + self.draw(st.binary(min_size=1, max_size=16)) + body[start:]

    def splice(self, body: bytearray) -> bytearray:
        other = self.draw(st.sampled_from(self.seeds))
        return body[: self.position(body)] + other[self.draw(st.integers(0, len(other) - 1)) :]

    def set_field(self, body: bytearray) -> bytearray:
        """A header field set to a small value (plausible sizes and lengths) or to any value."""
        offset, code = FIELDS[self.draw(st.sampled_from(sorted(FIELDS)))]
        bits = 8 * struct.calcsize(code)
        largest = (1 << bits) - 1
        value = self.draw(st.integers(0, min(300, largest)) | st.integers(0, largest))
        if len(body) >= offset + bits // 8:
            struct.pack_into("<" + code, body, offset, value)
        return body

    def move_boundary(self, body: bytearray) -> bytearray:
        """Bytes moved from one section to the next (the file size stays right): a misplaced split."""
        if len(body) >= HEADER_SIZE:
            first = FIELDS["hyper length"][0] + 4 * self.draw(st.integers(0, 2))
            shift = self.draw(st.integers(-64, 64))
            low, high = struct.unpack_from("<II", body, first)
            if 0 <= min(low + shift, high - shift) and max(low + shift, high - shift) < 1 << 32:
                struct.pack_into("<II", body, first, low + shift, high - shift)
        return body


# Damage that keeps the stream lengths consistent with the file size: it gets past parse.
SIZE_KEEPING = ("flip", "scramble", "set_field", "move_boundary")
ANY = SIZE_KEEPING + ("truncate", "delete", "insert", "splice")


@st.composite
def mutants(draw: Draw, seeds: list[bytes], kinds: tuple[str, ...] = ANY, low: int = 0) -> bytes:
    """A seed's body (without its CRC) after one to four mutations of these kinds."""
    mutator = Mutator(draw, seeds, low)
    body = bytearray(draw(st.sampled_from(seeds))[:-4])
    for _ in range(draw(st.integers(1, 4))):
        body = getattr(mutator, draw(st.sampled_from(kinds)))(body)
    return bytes(body)


def error_kind(exc: Exception) -> str:
    """An error without its numbers: what ``--hypothesis-show-statistics`` counts examples by."""
    return f"{type(exc).__name__}: {re.sub(r'[0-9a-f]{16}|[0-9]+', 'N', str(exc))}"


def check_parse(data: bytes) -> None:
    """parse raises FormatError, or accepts a file that it writes back byte for byte."""
    try:
        file = parse(data)
    except FormatError:
        return
    assert file.to_bytes() == data


@fuzz
@given(st.binary(max_size=200) | st.binary(max_size=200).map(lambda tail: MAGIC + tail))
def test_parse_refuses_arbitrary_bytes(data: bytes) -> None:
    check_parse(data)


@fuzz
@given(data=st.data())
def test_parse_refuses_damaged_files(seeds: list[bytes], data: st.DataObject) -> None:
    body = data.draw(mutants(seeds))
    damaged = reseal(body) if data.draw(st.booleans()) else body + data.draw(st.sampled_from(seeds))[-4:]
    note(f"damaged file: {damaged!r}")
    check_parse(damaged)


@fuzz
@given(data=st.data())
def test_decoder_refuses_damaged_files(seeds: list[bytes], data: st.DataObject) -> None:
    """Damage past the checksum: VaecodecError, or an image of the size and mode the header says."""
    damaged = reseal(data.draw(mutants(seeds, SIZE_KEEPING, low=HEADER_SIZE)))
    note(f"damaged file: {damaged!r}")
    try:
        image = vaecodec.decompress(damaged)
    except VaecodecError as exc:
        event(error_kind(exc))
        return
    event("decoded")
    header = parse(damaged)
    assert (image.size, image.mode) == ((header.width, header.height), header.mode)


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.vae")), ids=lambda path: path.name)
def test_former_crashers_raise_vaecodec_error(codec: vaecodec.Codec, path: Path) -> None:
    body = bytearray(path.read_bytes()[:-4])
    if len(body) >= WEIGHTS_ID.stop:
        body[WEIGHTS_ID] = codec.weights_id
    with pytest.raises(VaecodecError):
        codec.decompress(reseal(body))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's, about the damaged file
def test_tiff_whose_second_frame_has_no_dimensions_raises_vaecodec_error() -> None:
    """Found by fuzz/compress.py (the input path of ``vaecodec encode``): a valid 32x24 16-bit TIFF
    whose next-frame pointer leads to a frame with no width or height. Counting the frames
    (``n_frames``) makes Pillow raise TypeError("Missing dimensions"), which read_first_frame did
    not turn into VaecodecError, so the command line ended in a traceback (fixed: a damaged image)."""
    data = (CORPUS / "tiff-second-frame-without-dimensions.tif").read_bytes()
    with pytest.raises(VaecodecError):
        read_first_frame(io.BytesIO(data))
