"""WebDataset shards of .vae files: tar archives written here, streamed back as decoded tensors.

Training sets past one machine are read as a few large files rather than millions of small ones:
WebDataset's convention is a tar archive per shard whose members are named ``KEY.EXT``, the members
of one sample sharing a key. A shard written here holds one ``KEY.vae`` member per image.

Writing needs only the standard library's ``tarfile``, so ``vaecodec encode --shards`` works on a
core install, and each shard appears whole or not at all (``vaecodec.files``), which a streaming
writer such as ``webdataset.ShardWriter`` does not promise. Reading is left to the ``webdataset``
package (``pip install "vaecodec[shards]"``): it already splits shards between nodes and
``DataLoader`` workers, shuffles, and opens URLs and ``pipe:`` commands (object stores), which a
hand-written reader would only copy; :func:`dataset` adds the decoding. Ray Data reads the same
shards with ``ray.data.read_webdataset`` (a ``vae`` column of bytes, for ``vaecodec.ray``).
"""

from __future__ import annotations

import io
import re
import tarfile
import warnings
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

from vaecodec.errors import MissingExtra, VaecodecError
from vaecodec.extras import SHARDS, TORCH, needs_extra
from vaecodec.files import PendingFile, refuse_existing

if TYPE_CHECKING:
    from torch.utils.data import IterableDataset

    from vaecodec.codec import Codec

EXTENSION = "vae"
DEFAULT_MAX_FILES = 1000
DEFAULT_MAX_BYTES = 100_000_000  # 100 MB: large enough to stream well, small enough to spread over workers
_TAR_BLOCK = tarfile.BLOCKSIZE
_NUMBER_FIELD = re.compile(r"%0?\d*d")


def sample_key(name: str) -> str:
    """The WebDataset key of an input's relative path: the path without its extension, with the
    dots of its last part made underscores (WebDataset takes all after the first dot of a member's
    name as its extension: ``trip/a.b.vae`` would be key ``trip/a``, extension ``b.vae``)."""
    path = PurePosixPath(Path(name).as_posix())
    return str(path.with_name(path.stem.replace(".", "_")))


class ShardWriter:
    """Writes (key, .vae bytes) samples into numbered tar shards, ``pattern % n`` for n = 0, 1, ...

    A shard is closed when it holds ``max_files`` samples or the next would take it past
    ``max_bytes`` (a sample larger than that gets a shard to itself). Each shard is written under a
    temporary name and renamed when complete; leaving the ``with`` block on an error removes the
    shard being written. Existing shards are refused unless ``force``.
    """

    def __init__(self, pattern: str, *, max_files: int = DEFAULT_MAX_FILES, max_bytes: int = DEFAULT_MAX_BYTES,
                 force: bool = False) -> None:
        fields = _NUMBER_FIELD.findall(pattern.replace("%%", ""))
        if len(fields) != 1:
            raise VaecodecError(f"shard pattern {pattern!r} needs one number field, like shards/photos-%06d.tar")
        if max_files < 1 or max_bytes < 1:
            raise VaecodecError("shards must hold at least one file and one byte")
        self.pattern, self.max_files, self.max_bytes, self.force = pattern, max_files, max_bytes, force
        self.shards: list[str] = []  # the names of the shards completed so far
        self.samples = 0
        self._pending: PendingFile | None = None
        self._tar: tarfile.TarFile | None = None
        self._files = self._bytes = 0
        refuse_existing(self._name(0), force)  # before any work: the first shard is where a rerun collides

    def _name(self, index: int) -> str:
        return self.pattern % index

    def add(self, key: str, data: bytes, extension: str = EXTENSION) -> None:
        """Append one sample, ``KEY.vae`` (or another extension: the bench writes PNG shards to
        compare), starting a new shard when this one is full."""
        size = _TAR_BLOCK + -(-len(data) // _TAR_BLOCK) * _TAR_BLOCK
        if self._tar is not None and (self._files >= self.max_files or self._bytes + size > self.max_bytes):
            self._finish()
        if self._tar is None:
            self._start()
        assert self._tar is not None
        member = tarfile.TarInfo(f"{key}.{extension}")
        member.size, member.mode = len(data), 0o644  # mtime 0 and no owner: the same input, the same shard
        self._tar.addfile(member, io.BytesIO(data))
        self._files += 1
        self._bytes += size
        self.samples += 1

    def _start(self) -> None:
        name = self._name(len(self.shards))
        refuse_existing(name, self.force)
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        self._pending = PendingFile(Path(name))
        self._tar = tarfile.open(fileobj=self._pending.file, mode="w", format=tarfile.PAX_FORMAT)
        self._files = self._bytes = 0

    def _finish(self) -> None:
        assert self._tar is not None and self._pending is not None
        self._tar.close()
        self._pending.commit()
        self.shards.append(str(self._pending.target))
        self._tar = self._pending = None

    def close(self) -> None:
        """Complete the shard being written."""
        if self._tar is not None:
            self._finish()

    def discard(self) -> None:
        """Remove the shard being written (the completed ones stay)."""
        if self._pending is not None:
            self._pending.discard()
            self._tar = self._pending = None

    def braces(self) -> str:
        """The shards written, in WebDataset's brace notation: ``shards/x-{000000..000002}.tar``."""
        if len(self.shards) < 2:
            return self.shards[0] if self.shards else ""
        field = _NUMBER_FIELD.search(self.pattern)
        assert field is not None
        first, last = field.group() % 0, field.group() % (len(self.shards) - 1)
        return f"{self.pattern[: field.start()]}{{{first}..{last}}}{self.pattern[field.end():]}".replace("%%", "%")

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()


def write_shards(samples: Iterable[tuple[str, bytes]], pattern: str, **options: Any) -> list[str]:
    """Write (key, .vae bytes) samples into shards (see :class:`ShardWriter`); returns their names."""
    with ShardWriter(pattern, **options) as writer:
        for key, data in samples:
            writer.add(key, data)
    return writer.shards


class _Decode:
    """The decoding stage of :func:`dataset`: (key, tensor or array) per sample, skipping
    undecodable ones.

    A class rather than a closure, so the pipeline also pickles to spawned workers (the codec
    travels as a few bytes and each worker loads its model once).
    """

    def __init__(self, codec: Codec, arrays: bool) -> None:
        self.codec, self.arrays = codec, arrays

    def __call__(self, samples: Iterable[dict[str, Any]]) -> Iterator[tuple[str, Any]]:
        for sample in samples:
            name = f"{sample.get('__url__', '')}:{sample['__key__']}"
            try:
                if EXTENSION not in sample:
                    raise VaecodecError(f"no .{EXTENSION} member")
                data = sample[EXTENSION]
                yield sample["__key__"], (np.asarray(self.codec.decompress(data)) if self.arrays
                                          else self.codec.decompress_tensor(data))
            except MissingExtra:
                raise
            except VaecodecError as exc:
                warnings.warn(f"vaecodec: skipped {name}: {exc}", RuntimeWarning, stacklevel=1)


def dataset(urls: str | list[str], codec: Codec | None = None, *, shuffle: int = 0,
            arrays: bool = False) -> IterableDataset:
    """The shards at ``urls`` as an ``IterableDataset`` of (key, 3xHxW float tensor in [0, 1]),
    or with ``arrays=True`` of (key, HxWxC uint8 array: the pixels of ``vaecodec.decompress``),
    which needs no torch.

    ``urls`` are WebDataset's: a list, or a brace pattern (``shards/x-{000000..000009}.tar``), of
    paths, URLs or ``pipe:`` commands. The shards are shared out between the nodes of a
    ``torch.distributed`` job and the ``DataLoader``'s workers (a worker with no shard yields
    nothing); ``shuffle`` > 0 shuffles the shards, and the samples in a buffer of that many. The
    tensors are those ``codec.decompress_tensor`` gives (default: the shipped weights on the CPU).
    A sample that does not decode is skipped with a ``RuntimeWarning`` naming it and the reason.
    Needs ``pip install "vaecodec[shards]"``.
    """
    with needs_extra(SHARDS):
        import webdataset as wds
    if not arrays:
        with needs_extra(TORCH.needed_by("a dataset of tensors (arrays=True gives numpy arrays)")):
            import torch  # noqa: F401 (the tensors' library, checked before any shard is read)
    if codec is None:
        from vaecodec.codec import Codec

        codec = Codec()
    pipeline = wds.WebDataset(urls, shardshuffle=shuffle if shuffle > 0 else False, nodesplitter=wds.split_by_node,
                              empty_check=False)
    if shuffle > 0:
        pipeline = pipeline.shuffle(shuffle)
    return pipeline.compose(_Decode(codec, arrays))
