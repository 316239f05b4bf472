"""``vaecodec encode --shards PATTERN``: images into WebDataset tar shards of .vae files.

The inputs are planned as for files (folders, ``-r``, globs), each named by its path under the
folder it was found in, without the extension: that path is its key in the shards
(``vaecodec.shards.sample_key``). The files are coded as ``encode`` codes them (``-j`` too: the
command hands over its per-file work) and go into the shards in the inputs' order, whatever the
order they finish in, here in the main process, which alone writes. This module imports nothing of
``vaecodec.cli.main``, which imports it.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Callable

from vaecodec.cli import PROG
from vaecodec.cli.options import whole_number
from vaecodec.errors import VaecodecError
from vaecodec.shards import DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, ShardWriter, sample_key

if TYPE_CHECKING:
    from vaecodec.cli.batch import Job, Outcome


def add_options(parser: argparse.ArgumentParser, size: Callable[[str], int]) -> None:
    """``--shards``, ``--shard-files`` and ``--shard-size`` (parsed by ``size``, as ``--size`` is)
    for ``vaecodec encode``."""
    group = parser.add_argument_group("WebDataset shards")
    group.add_argument("--shards", metavar="PATTERN",
                       help="write tar shards of .vae files instead of files; PATTERN has one number field, "
                            "e.g. shards/photos-%%06d.tar; a file's key is its path under the folder given, "
                            "without the extension")
    group.add_argument("--shard-files", type=whole_number("shard-files"), default=DEFAULT_MAX_FILES, metavar="N",
                       help=f"at most N files a shard (default {DEFAULT_MAX_FILES})")
    group.add_argument("--shard-size", type=size, default=DEFAULT_MAX_BYTES, metavar="SIZE",
                       help=f"at most SIZE bytes a shard, e.g. 1GB (default {DEFAULT_MAX_BYTES // 1_000_000}MB)")


def encode_shards(args: argparse.Namespace, work: Callable[[Job], Outcome], *, processes: int,
                  setup: Callable[[], object]) -> int:
    """Code the inputs into shards with ``work`` (one input to an outcome holding its .vae bytes;
    in ``processes`` processes, each run ``setup`` first, as ``vaecodec.cli.batch.run`` does). A
    file that fails is reported and left out, as with files; the exit status is ``run``'s."""
    from vaecodec.cli.batch import image_suffixes, plan, run

    if args.output is not None or args.out_dir is not None:
        raise VaecodecError("--shards writes shards, not files: leave out -o/--output and --out-dir")
    if "-" in args.inputs:
        raise VaecodecError("--shards reads files, not stdin")
    jobs = _keyed(plan(args.inputs, suffixes=image_suffixes(), kind="image", recursive=args.recursive,
                       output_suffix=".vae", output=None, out_dir=""))
    with ShardWriter(args.shards, max_files=args.shard_files, max_bytes=args.shard_size, force=args.force) as writer:
        setup()  # a bad --weights or --device is one error before any file
        status = run(jobs, work, processes=processes, setup=setup,
                     deliver=lambda job, outcome: writer.add(job.output, outcome.data))
    if writer.shards:
        count = len(writer.shards)
        print(f"{PROG}: {writer.samples} files in {count} shard{'' if count == 1 else 's'}: {writer.braces()}",
              file=sys.stderr, flush=True)
    return status


def _keyed(jobs: list[Job]) -> list[Job]:
    """The jobs with their keys for outputs; a key taken already makes a job's problem."""
    from vaecodec.cli.batch import Job

    keyed: list[Job] = []
    owners: dict[str, str] = {}
    for job in jobs:
        if job.problem is not None:
            keyed.append(job)
            continue
        key = sample_key(job.output)
        owner = owners.setdefault(key, job.source)
        problem = None if owner == job.source else f"{job.source}: its key {key} is already that of {owner}"
        keyed.append(Job(job.source, key, problem))
    return keyed
