"""Parsers of option values shared by the commands, each giving argparse's one-line error."""

from __future__ import annotations

import argparse
from typing import Callable

from vaecodec.errors import VaecodecError


def whole_number(name: str) -> Callable[[str], int]:
    """A parser of a whole number from 1 up, for the option ``name``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number from 1 up, got {text!r}")
        return value

    return parse


def number_list(option: str, convert: Callable[[str], float], text: str | None) -> tuple | None:
    """A comma-separated list of numbers given to ``option`` (None when it was not given)."""
    if text is None:
        return None
    try:
        return tuple(convert(v) for v in text.split(","))
    except ValueError:
        kind = "whole numbers" if convert is int else "numbers"
        raise VaecodecError(f"{option}: not a comma-separated list of {kind}: {text!r}") from None
