"""Many inputs at once for ``vaecodec encode`` and ``decode``.

``plan`` turns the names on the command line (files, folders, globs, ``-``) into jobs, each with
its output: beside the input, or mirrored under ``--out-dir`` relative to the folder (or the fixed
part of the glob) it was found in. ``run`` does the jobs one by one, or with ``-j N`` in N spawned
worker processes; a failing job is reported and skipped so that the others still complete, and for
batches a progress bar (on a terminal) and a summary line go to stderr. Every worker process runs
its strips on one thread (``vaecodec.threads.set_threads``): the pool is the parallelism.

Measured on the two-core machine this was built on, beside a training run (load average 3.6; the
kernel's autogroup scheduling kept one core for the training whatever ran beside it), wall times
with start-up, medians of six: sixteen 384x384 photos encoded in 3.5 s with -j 1 and 6.9 s with
-j 2, eight 768x512 photos in 4.6 s and 7.9 s, and decoded in 5.4 s and 8.7 s (torch, before the
engines: starting a worker imported torch, about 3.4 s; ONNX Runtime starts in a fraction of that).
There was no second core to win the start-up back, so -j defaults to 1. Machines with idle cores
may gain from -j on batches that take longer than the start-up; that was not measured.
"""

from __future__ import annotations

import functools
import glob
import itertools
import multiprocessing
import os
import shutil
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence, TextIO

from PIL import Image

from vaecodec.cli import PROG
from vaecodec.errors import VaecodecError

_GLOB_CHARACTERS = "*?["


@dataclass(frozen=True)
class Job:
    """One input and where its result goes (``-`` for stdin / stdout), or why it has none."""

    source: str
    output: str = ""
    problem: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What one job moved, for the summary line: bytes read and written, pixels, .vae bytes; and
    what the user should know of it (printed by ``run`` as ``vaecodec: warning: ...``)."""

    read: int
    written: int
    pixels: int
    coded: int
    warnings: tuple[str, ...] = ()
    data: bytes = b""  # the coded file, for a ``deliver`` hook of ``run`` (the shards' writer)


def image_suffixes() -> frozenset[str]:
    """Extensions of the files Pillow can open, other than .vae: the images a folder holds."""
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN and ext != ".vae")


def plan(names: Sequence[str], *, suffixes: frozenset[str], kind: str, recursive: bool,
         output_suffix: str, output: str | None, out_dir: str | None) -> list[Job]:
    """The jobs for the command-line inputs, in order, each input file once.

    ``suffixes`` picks the files of a folder (``kind`` names them in messages); ``output`` is
    ``-o``, which takes exactly one input. Raises VaecodecError for options that do not fit.
    """
    if output is not None and out_dir is not None:
        raise VaecodecError("use either -o/--output or --out-dir, not both")
    jobs: list[Job] = []
    outputs: dict[str, str] = {}
    seen: set[str] = set()
    for name in names:
        for source, base, problem in _expand(name, suffixes, kind, recursive):
            if problem is not None:
                jobs.append(Job(source, problem=problem))
                continue
            if os.path.normpath(source) in seen:
                continue
            seen.add(os.path.normpath(source))
            target = output if output is not None else _output_for(source, base, output_suffix, out_dir)
            earlier = outputs.setdefault(os.path.normpath(target), source)
            if earlier != source:
                jobs.append(Job(source, problem=f"{source}: its output {target} is already that of {earlier}"))
            else:
                jobs.append(Job(source, target))
    if output is not None and (len(names) > 1 or len(jobs) > 1):
        raise VaecodecError("-o/--output takes one input; use --out-dir for several")
    return jobs


def _expand(name: str, suffixes: frozenset[str], kind: str, recursive: bool) -> Iterator[tuple[str, Path, str | None]]:
    """(file, folder it is mirrored from, problem) for one command-line name."""
    path = Path(name)
    if name == "-" or path.is_file() or (not path.is_dir() and not _is_pattern(name)):
        yield name, path.parent, None  # a missing file is reported when it is read
    elif path.is_dir():
        yield from _folder(path, path, suffixes, kind, recursive)
    else:
        matches = sorted(glob.glob(name, recursive=True))
        if not matches:
            yield name, path.parent, f"{name}: no files match"
            return
        root = Path(*itertools.takewhile(lambda part: not _is_pattern(part), path.parts))
        for match in map(Path, matches):
            if match.is_dir():
                yield from _folder(match, root, suffixes, kind, recursive)
            else:
                yield str(match), root, None


def _folder(folder: Path, base: Path, suffixes: frozenset[str], kind: str, recursive: bool) -> Iterator[tuple[str, Path, str | None]]:
    """The files of a folder with these suffixes, sorted; a problem if there are none."""
    entries = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in entries if p.suffix.lower() in suffixes and p.is_file())
    if not files:
        hint = "" if recursive else " (--recursive looks in subfolders)"
        yield str(folder), base, f"{folder}: no {kind} files in this folder{hint}"
    for file in files:
        yield str(file), base, None


def _is_pattern(name: str) -> bool:
    return any(character in name for character in _GLOB_CHARACTERS)


def _output_for(source: str, base: Path, suffix: str, out_dir: str | None) -> str:
    if source == "-":
        raise VaecodecError("reading from stdin needs -o/--output")
    if out_dir is None:
        return str(Path(source).with_suffix(suffix))
    return str((Path(out_dir) / Path(source).relative_to(base)).with_suffix(suffix))


def run(jobs: Sequence[Job], work: Callable[[Job], Outcome], *, processes: int = 1,
        setup: Callable[[], object] | None = None, deliver: Callable[[Job, Outcome], None] | None = None) -> int:
    """Do every job; report each failure on its own line and go on. Exit status 1 if any failed.

    A single job reports errors exactly as they are; in a batch each names its input. With
    ``processes`` > 1 (and as many jobs), that many worker processes each run ``setup`` once and
    then ``work`` on one job at a time; ``work`` and ``setup`` must then pickle (module-level
    functions or partials of them). Failures are reported as the jobs finish, in any order.
    ``deliver``, if given, gets each successful job's outcome here, in the jobs' order whatever
    the order they finish in (so shards hold the same files in the same places with ``-j`` as
    without), and its ``data`` is then dropped; what it raises ends the run. Failures are then
    reported in the jobs' order too.
    """
    stream = sys.stderr
    batch = len(jobs) > 1
    progress = _Progress(len(jobs), stream) if batch and stream.isatty() else None
    show = progress.show if progress is not None else lambda done, name: None
    workers = min(processes, sum(job.problem is None for job in jobs))
    results = (_in_pool(jobs, work, workers, setup, show, ordered=deliver is not None) if workers > 1
               else _in_turn(jobs, work, show))
    outcomes: list[Outcome] = []
    failed = 0

    def say(kind: str, text: str) -> None:
        if progress is not None:
            progress.clear()
        print(f"{PROG}: {kind}: {text}", file=stream, flush=True)

    try:
        for job, result in results:
            try:
                outcomes.append(result())
            except (VaecodecError, OSError) as exc:
                failed += 1
                text = str(exc)
                say("error", text if not batch or text.startswith(job.source) else f"{job.source}: {text}")
                continue
            for warning in outcomes[-1].warnings:
                say("warning", warning)
            if deliver is not None:
                deliver(job, outcomes[-1])
                outcomes[-1] = replace(outcomes[-1], data=b"")  # a batch's files need not stay in memory
    finally:
        results.close()  # on Ctrl-C or a crash: the pool is shut down after the files in progress
        if progress is not None:
            progress.clear()
    if batch:
        print(summary(outcomes, failed), file=stream, flush=True)
    return 1 if failed else 0


_Results = Iterator[tuple[Job, Callable[[], Outcome]]]
ORDERED_WINDOW = 4  # finished results kept per worker while an earlier job runs, when they go in order


def _in_turn(jobs: Sequence[Job], work: Callable[[Job], Outcome], show: Callable[[int, str], None]) -> _Results:
    """Each job with the call that does it, here and in order (each on all the codec's threads)."""
    for done, job in enumerate(jobs):
        show(done, job.source)
        yield job, functools.partial(_do, work, job)


def _in_pool(jobs: Sequence[Job], work: Callable[[Job], Outcome], workers: int,
             setup: Callable[[], object] | None, show: Callable[[int, str], None], ordered: bool = False) -> _Results:
    """Each job with its result from a pool of ``workers`` processes, as they finish, or with
    ``ordered`` in the jobs' order (the finished results behind a slow one wait, up to
    ORDERED_WINDOW per worker, before the workers wait too).

    Only as many jobs as workers are handed out at once, so that when this generator is left
    (Ctrl-C, or an unexpected error) the pool's shutdown waits for those alone. The workers are
    spawned (fork is unsafe once an engine has started threads) with SIGINT ignored, which they keep
    except while they do a job: Ctrl-C on a terminal interrupts the files in progress, whose
    temporary outputs are removed, and prints no worker's traceback (while the workers start, it
    waits for them to finish their first files).
    """
    waiting = list(reversed(jobs))
    running: dict[Future[Outcome], Job] = {}  # handed out (or refused at once), in the jobs' order
    done = 0
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)  # until the workers have started
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_start_worker, initargs=(setup,)) as pool:
            while waiting or running:
                while (waiting and sum(not f.done() for f in running) < workers
                       and len(running) < ORDERED_WINDOW * workers):
                    job = waiting.pop()
                    if job.problem is None:
                        running[pool.submit(_interruptible, work, job)] = job  # may start a worker
                    else:
                        refused: Future[Outcome] = Future()
                        refused.set_exception(VaecodecError(job.problem))
                        running[refused] = job
                signal.signal(signal.SIGINT, handler)  # all started: as many jobs as workers were sent
                busy = [f for f in running if not f.done()]
                if busy:
                    show(done, running[busy[0]].source)
                if busy and not _ready(running, ordered):
                    wait(busy, return_when=FIRST_COMPLETED)
                for future in _ready(running, ordered):
                    done += 1
                    yield running.pop(future), future.result
    finally:
        signal.signal(signal.SIGINT, handler)


def _ready(running: dict[Future[Outcome], Job], ordered: bool) -> list[Future[Outcome]]:
    """The finished jobs that may be yielded now: all of them, or with ``ordered`` those before
    the first unfinished one."""
    if ordered:
        return list(itertools.takewhile(Future.done, running))
    return [future for future in running if future.done()]


def _do(work: Callable[[Job], Outcome], job: Job) -> Outcome:
    if job.problem is not None:
        raise VaecodecError(job.problem)
    return work(job)


def _start_worker(setup: Callable[[], object] | None) -> None:
    """A worker's start: the transforms get one thread (the pool is the parallelism); then ``setup``."""
    from vaecodec.threads import set_threads

    set_threads(1)
    if setup is not None:
        setup()


def _interruptible(work: Callable[[Job], Outcome], job: Job) -> Outcome:
    """``work(job)`` in a worker, which Ctrl-C interrupts (between jobs the worker ignores it)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return work(job)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def summary(outcomes: Sequence[Outcome], failed: int) -> str:
    """``vaecodec: 3 files, 1,204,331 -> 61,022 bytes, mean 0.410 bpp``: bits over all pixels."""
    read, written = sum(o.read for o in outcomes), sum(o.written for o in outcomes)
    pixels = sum(o.pixels for o in outcomes)
    line = f"{PROG}: {len(outcomes)} file{'' if len(outcomes) == 1 else 's'}, {read:,} -> {written:,} bytes"
    if pixels:
        line += f", mean {8 * sum(o.coded for o in outcomes) / pixels:.3f} bpp"
    return line + (f"; {failed} failed" if failed else "")


class _Progress:
    """A one-line bar, redrawn in place before each file and erased at the end."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream = total, stream

    def show(self, done: int, name: str) -> None:
        width = shutil.get_terminal_size().columns
        filled = 20 * done // self.total
        line = f"[{'#' * filled}{'.' * (20 - filled)}] {done}/{self.total} {name}"
        self.stream.write(f"\r\x1b[K{line[: width - 1]}")
        self.stream.flush()

    def clear(self) -> None:
        self.stream.write("\r\x1b[K")
        self.stream.flush()
