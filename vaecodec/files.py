"""Outputs that appear whole or not at all: written beside their target, renamed when complete.

The command line's files, the bench's reports and the WebDataset shards share this, so an
interrupted or failing run never leaves a half-written output where a finished one would be
expected, and an existing output is replaced only when asked (``force``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from vaecodec.errors import VaecodecError


class PendingFile:
    """A temporary file beside ``target`` that becomes it on :meth:`commit`, or goes on :meth:`discard`."""

    def __init__(self, target: Path) -> None:
        self.target = target
        handle, self._tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        self.file: BinaryIO = os.fdopen(handle, "wb")

    def commit(self) -> None:
        self.file.close()
        os.chmod(self._tmp, 0o666 & ~_umask())  # mkstemp makes private files; outputs get the usual mode
        os.replace(self._tmp, self.target)

    def discard(self) -> None:
        self.file.close()
        Path(self._tmp).unlink(missing_ok=True)


@contextmanager
def replacing(target: Path) -> Iterator[BinaryIO]:
    """A file to write ``target``'s contents to: it replaces ``target`` only if the block completes."""
    pending = PendingFile(target)
    try:
        yield pending.file
        pending.commit()
    except BaseException:
        pending.discard()
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def refuse_existing(path: str, force: bool) -> None:
    """Fail before any work if ``path`` exists and may not be overwritten."""
    if path == "-":
        return
    if Path(path).is_dir():
        raise VaecodecError(f"{path} is a directory")
    if Path(path).exists() and not force:
        raise VaecodecError(f"{path} exists (use -f to overwrite)")


def write_output(path: str, data: bytes, force: bool) -> None:
    """Write ``data`` to ``path`` (``-`` is stdout) atomically; refuse to overwrite without force."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    refuse_existing(path, force)
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise VaecodecError(f"{directory}: no such directory")
    with replacing(directory / target.name) as out:
        out.write(data)
