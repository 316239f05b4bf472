"""The .vae container: exact write/parse round trips and the refusal of every malformed file."""

from __future__ import annotations

import struct

import pytest

from vaecodec.format.container import HEADER_SIZE, MAGIC, VERSION, FormatError, VaeFile, parse

from conftest import reseal

SAMPLE = VaeFile("RGB", 17, 33, 6250, bytes(range(8)), b"\x01\x02\x03\x04", b"\x05\x06\x07\x08" * 3)


def test_round_trip_keeps_every_field() -> None:
    data = SAMPLE.to_bytes()
    assert data[:4] == MAGIC and data[4] == SAMPLE.version == 1
    assert parse(data) == SAMPLE
    assert len(data) == SAMPLE.size == HEADER_SIZE + 4 + 12 + 4
    assert SAMPLE.bits_per_pixel == pytest.approx(8 * len(data) / (17 * 33))


def test_version_2_round_trips_and_other_versions_are_refused() -> None:
    """Version 2 (a context coder's stream layout) is written and read; 0 and 3 cannot be written."""
    from dataclasses import replace

    newer = replace(SAMPLE, version=2)
    assert VERSION == 2 and newer.to_bytes()[4] == 2 and parse(newer.to_bytes()) == newer
    for version in (0, 3):
        with pytest.raises(FormatError, match="version"):
            replace(SAMPLE, version=version).to_bytes()


def test_grayscale_mode_round_trips() -> None:
    gray = VaeFile("L", 1, 1, 0, b"\xff" * 8, b"", b"")
    assert parse(gray.to_bytes()) == gray


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: b"", "magic"),
        (lambda d: b"PNG\x89" + d[4:], "magic"),
        (lambda d: d[:20], "truncated"),
        (lambda d: d[:-1], "truncated"),
        (lambda d: d + b"\x00", "truncated"),
        (lambda d: d[:40] + bytes([d[40] ^ 1]) + d[41:], "checksum"),
        (lambda d: reseal(d[:4] + bytes([VERSION + 1]) + d[5:-4]), "newer"),
        (lambda d: reseal(d[:4] + b"\x00" + d[5:-4]), "version"),
        (lambda d: reseal(d[:5] + b"\x07" + d[6:-4]), "colour mode"),
        (lambda d: reseal(d[:6] + struct.pack("<H", 10001) + d[8:-4]), "quality"),
        (lambda d: reseal(d[:8] + struct.pack("<I", 0) + d[12:-4]), "dimensions"),
        (lambda d: reseal(d[:12] + struct.pack("<I", 70000) + d[16:-4]), "dimensions"),
    ],
)
def test_malformed_files_are_refused(mutate, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse(mutate(SAMPLE.to_bytes()))


def test_writer_refuses_impossible_fields() -> None:
    with pytest.raises(FormatError):
        VaeFile("CMYK", 1, 1, 5000, b"\x00" * 8, b"", b"").to_bytes()
    with pytest.raises(FormatError):
        VaeFile("RGB", 0, 5, 5000, b"\x00" * 8, b"", b"").to_bytes()
