"""``vaecodec encode --effort N``: the option, and the steps of a slow encode shown on a terminal.

An effort above the default runs seconds to minutes per image (``vaecodec.effort``), so a terminal
shows which file is being optimised and how far along it is, on one line of stderr that is erased
when the file is done. Nothing is shown when stderr is not a terminal, nor from ``-j`` worker
processes (their lines would garble the batch's progress bar, which the main process draws).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO

from vaecodec.effort import DEFAULT_EFFORT, EFFORTS, STEPS

HELP = (f"{EFFORTS[0]}-{EFFORTS[-1]} (default {DEFAULT_EFFORT}): encode time spent on a smaller file at the same "
        "quality, decoded as any other. Above 1 the latent's symbols are optimised for the image (effort 2: "
        "about 5x the time of a plain encode, 3.5%% fewer bits at equal PSNR; 4: about 10x, 4.6%%; "
        f"9: {STEPS[8]} steps, about 320x, 8.9%% fewer; measured on Kodak, see the README). With "
        "--size/--bpp/--psnr the quality is searched with plain encodes, then the file at the found quality "
        "is optimised and checked against the target again (if it misses, a nearby quality is, up to 3 "
        "times, else the plain file is kept): the search's cost plus usually one optimisation, and the "
        "file stays at the plain search's quality, typically a little under a size target")


def parse_effort(text: str) -> int:
    """An argparse type: a whole number on the effort scale."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value not in EFFORTS:
        raise argparse.ArgumentTypeError(
            f"effort must be a whole number from {EFFORTS[0]} to {EFFORTS[-1]}, got {text!r}")
    return value


@contextmanager
def terminal_progress(name: str, effort: int,
                      stream: TextIO | None = None) -> Iterator[Callable[[int, int], None] | None]:
    """A ``progress`` callback for ``Codec.compress`` that redraws ``NAME: effort 9, step 12/64``
    on a terminal, and erases the line when the block ends (also on an error or Ctrl-C); None
    where nothing is to be shown."""
    stream = sys.stderr if stream is None else stream
    if effort == DEFAULT_EFFORT or not stream.isatty() or multiprocessing.parent_process() is not None:
        yield None
        return
    drawn = False

    def show(done: int, steps: int) -> None:
        nonlocal drawn
        stream.write(f"\r\x1b[K{name}: effort {effort}, step {done}/{steps}")
        stream.flush()
        drawn = True

    try:
        yield show
    finally:
        if drawn:
            stream.write("\r\x1b[K")
            stream.flush()
