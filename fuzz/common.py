"""What the four fuzz targets share: the contract, the hang watchdog, a .vae-aware mutator, the runner.

The contract (docs/fuzzing.md): every input either codes, or raises ``VaecodecError`` (or, for
the Pillow plugin, one of the errors Pillow documents for a bad file). Anything else is a failure:

- another exception: ``expect`` turns it into a ``ContractViolation`` (with the original chained),
  which atheris reports as a crash and saves the input for (``crash-<sha1>``);
- a hang: the watchdog (``HANG_SECONDS``, 10 s) prints where the input is stuck (Python's stack,
  which libFuzzer's own ``-timeout`` cannot show), saves it as ``hang-<sha1>`` in the artifact
  folder and ends the process with status 70;
- memory past a bound: libFuzzer's ``-rss_limit_mb`` (2048 in fuzz/run.sh) ends the process;
- a crash of a native extension (constriction, numpy, ONNX Runtime, OpenVINO, Pillow's C code):
  libFuzzer's signal handlers report it and save the input.

Each target runs two ways:

- fuzzing, with atheris (libFuzzer's flags): ``python fuzz/decompress.py fuzz/corpus/decompress
  -max_total_time=60 -rss_limit_mb=2048 -timeout=10``;
- replaying files and folders once, without atheris (for coverage.py, and to check a saved
  input): ``python fuzz/decompress.py --replay fuzz/corpus/decompress``, which prints how the
  inputs ended and every failure, and exits 1 if there was one.

Environment: ``VAECODEC_FUZZ_ARTIFACTS`` (the folder where the watchdog saves hangs; by default
libFuzzer's ``-artifact_prefix``, else the current folder), ``VAECODEC_FUZZ_HANG`` (seconds, default 10),
``VAECODEC_FUZZ_OUTCOMES`` (a file that the table of how inputs ended is written to, every 10 s).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import struct
import subprocess
import sys
import threading
import time
import traceback
import warnings
import zlib
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

try:
    import atheris
except ImportError:  # replaying needs no atheris
    atheris = None

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
OUT = FUZZ / "out"  # scratch (ignored by git): grown corpora, crashes, the context weights
HANG_SECONDS = float(os.environ.get("VAECODEC_FUZZ_HANG", "10"))
REPLAYING = "--replay" in sys.argv[1:]
REPORT_SECONDS = 10

# Where vaecodec's own code is: the one package the targets instrument (numpy, Pillow and the
# engines are not: their Python is not what is under test, and instrumenting it slows every run).
INSTRUMENTED = ["vaecodec"]
sys.path.insert(0, str(ROOT))  # the checkout's vaecodec, also when run from another folder

# The .vae header (vaecodec.format.container): magic, version, mode, quality, width, height,
# weights id, then the four section lengths; the file ends in a CRC32 of everything before it.
_HEADER = struct.Struct("<4sBBHII8sIIII")
_LENGTHS = 24  # offset of the four section lengths


class ContractViolation(AssertionError):
    """An input ended in something the contract does not allow (the cause is chained)."""


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """Import vaecodec inside this to let atheris see its branches (not when replaying)."""
    if atheris is None or REPLAYING:
        yield
        return
    with atheris.instrument_imports(include=INSTRUMENTED):
        yield


def error_kind(exc: BaseException) -> str:
    """An error without its numbers (as tests/test_fuzz.py counts them)."""
    return f"{type(exc).__name__}: {re.sub(r'[0-9a-f]{16}|[0-9]+', 'N', str(exc))}"[:110]


def expect(call: Callable[[], str | None], allowed: tuple[type[BaseException], ...]) -> str:
    """Run ``call``; an allowed error is an outcome (its kind), anything else a ContractViolation.
    ``call`` returns its own outcome's name (default "ok")."""
    try:
        return call() or "ok"
    except KeyboardInterrupt:
        raise
    except allowed as exc:
        return error_kind(exc)
    except BaseException as exc:  # SystemExit too: a library function must not exit the process
        names = ", ".join(kind.__name__ for kind in allowed) or "no exception at all"
        raise ContractViolation(f"{type(exc).__name__} escaped, where the contract allows {names}: {exc}") from exc


# -- the .vae-aware mutator --------------------------------------------------------------------


def _fit_lengths(body: bytearray, rng: random.Random) -> None:
    """Make the header's section lengths add up to the body's size again (after an insertion or a
    deletion), by moving the difference into one section that can take it."""
    if len(body) < _HEADER.size:
        return
    lengths = list(struct.unpack_from("<4I", body, _LENGTHS))
    difference = len(body) - _HEADER.size - sum(lengths)
    sections = [k for k in range(4) if 0 <= lengths[k] + difference < 1 << 32]
    if difference and sections:
        k = rng.choice(sections)
        lengths[k] += difference
        struct.pack_into("<4I", body, _LENGTHS, *lengths)


def vae_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's own mutation, then, most of the time, what a file needs to get past the parser:
    the section lengths fitted to the size and the CRC32 trailer recomputed. Without the reseal
    nearly every mutant would stop at the checksum, short of the streams and the integer networks;
    15 % are left as they are, so the checks before the checksum's are fuzzed too."""
    rng = random.Random(seed)
    data = atheris.Mutate(data, max_size)
    if rng.random() < 0.15 or len(data) < 4:
        return data
    body = bytearray(data[:-4])
    if rng.random() < 0.75:
        _fit_lengths(body, rng)
    return bytes(body) + zlib.crc32(body).to_bytes(4, "little")  # as long as the mutant: within max_size


# -- the runner -------------------------------------------------------------------------------


class _Watch:
    """The input being run and since when, for the watchdog thread; the outcomes so far."""

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.started = 0.0
        self.outcomes: Counter[str] = Counter()
        self.main_thread = threading.get_ident()

    def watchdog(self) -> None:
        while True:
            time.sleep(0.5)
            data, started = self.data, self.started
            if data is not None and time.monotonic() - started > HANG_SECONDS:
                self._hang(data, time.monotonic() - started)

    def _hang(self, data: bytes, seconds: float) -> None:
        name = f"hang-{hashlib.sha1(data).hexdigest()}"
        path = Path(artifact_prefix() + name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        frame = sys._current_frames().get(self.main_thread)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no stack)\n"
        sys.stderr.write(f"\n== CONTRACT VIOLATION: an input ran for {seconds:.1f} s (limit {HANG_SECONDS:g} s); "
                         f"saved as {path}\n== where it was:\n{stack}")
        sys.stderr.flush()
        os._exit(70)


def artifact_prefix() -> str:
    """Where found inputs go: VAECODEC_FUZZ_ARTIFACTS (a folder), else libFuzzer's -artifact_prefix,
    else the current folder (as libFuzzer)."""
    if "VAECODEC_FUZZ_ARTIFACTS" in os.environ:
        return os.path.join(os.environ["VAECODEC_FUZZ_ARTIFACTS"], "")
    given = [a.partition("=")[2] for a in sys.argv[1:] if a.startswith("-artifact_prefix=")]
    return given[-1] if given else ""


def _files(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        found.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
    return found


def _replay(test_one_input: Callable[[bytes], str], paths: list[str], watch: _Watch) -> int:
    """Each file once; every failure is printed (and counted), and the status is 1 if there was one."""
    started = time.monotonic()
    files = _files(paths)
    failed = []
    for path in files:
        watch.data, watch.started = path.read_bytes(), time.monotonic()
        try:
            watch.outcomes[test_one_input(watch.data)] += 1
        except ContractViolation:
            traceback.print_exc()
            print(f"FAILED on {path}", file=sys.stderr)
            failed.append(path)
            watch.outcomes["CONTRACT VIOLATION"] += 1
        finally:
            watch.data = None
    print(f"replayed {len(files)} inputs in {time.monotonic() - started:.1f} s; outcomes:")
    for kind, count in watch.outcomes.most_common():
        print(f"  {count:6d}  {kind}")
    if failed:
        print(f"{len(failed)} failed: {' '.join(map(str, failed))}", file=sys.stderr)
    return 1 if failed else 0


def run(test_one_input: Callable[[bytes], str], mutator: Callable[[bytes, int, int], bytes] | None = None) -> None:
    """Fuzz ``test_one_input`` with atheris (libFuzzer's arguments in sys.argv), or replay files
    with ``--replay PATH...``. The outcomes are counted, and printed every 10 s when fuzzing."""
    warnings.simplefilter("ignore")  # Pillow's warnings (a large size, odd EXIF) are not outcomes
    watch = _Watch()
    threading.Thread(target=watch.watchdog, name="fuzz-watchdog", daemon=True).start()
    if REPLAYING:
        raise SystemExit(_replay(test_one_input, [a for a in sys.argv[1:] if a != "--replay"], watch))
    if atheris is None:
        raise SystemExit("atheris is not installed: pip install atheris (or replay files with --replay)")
    last_report = [time.monotonic()]
    outcomes_file = os.environ.get("VAECODEC_FUZZ_OUTCOMES")

    def report() -> None:
        """The outcomes so far: a line on stderr, and the whole table in VAECODEC_FUZZ_OUTCOMES
        (libFuzzer ends the process without running Python's exit handlers, so it is kept current)."""
        last_report[0] = time.monotonic()
        total = sum(watch.outcomes.values())
        top = "; ".join(f"{100 * n / total:.1f}% {kind}" for kind, n in watch.outcomes.most_common(4))
        print(f"#outcomes of {total} inputs: {top}", file=sys.stderr, flush=True)
        if outcomes_file:
            table = "".join(f"{n:9d}  {kind}\n" for kind, n in watch.outcomes.most_common())
            Path(outcomes_file).write_text(f"{total:9d}  inputs\n{table}")

    def one_input(data: bytes) -> None:
        watch.data, watch.started = data, time.monotonic()
        try:
            watch.outcomes[test_one_input(data)] += 1
        finally:
            watch.data = None
        if time.monotonic() - last_report[0] > REPORT_SECONDS:
            report()

    # libFuzzer runs argv[0] through the shell for -fork, -jobs, -merge and -minimize_crash: the
    # script, with this interpreter (a target is not executable of its own)
    argv = [f"{sys.executable} {os.path.abspath(sys.argv[0])}", *sys.argv[1:]]
    atheris.Setup(argv, one_input, **({"custom_mutator": mutator} if mutator else {}))
    atheris.Fuzz()


# -- the version 2 weights --------------------------------------------------------------------

CONTEXT_FOLDER = OUT / "context-weights"
CONTEXT_GROUPS = (2, 2, 4, 4)


def context_bundle() -> Path | None:
    """A small weights bundle of kind "channel-context" (its files are .vae version 2), made
    deterministically with torch on first use (it is 0.8 MB, so it is not committed) and kept in
    fuzz/out/; made in a process of its own, so that a target's process never loads torch. The
    version 2 seeds of the corpus were coded with it (fuzz/make_corpus.py). None when it is not
    there and torch is not installed."""
    path = CONTEXT_FOLDER / "context.npz"
    if not path.exists():
        subprocess.run([sys.executable, __file__, "context-weights"], check=False)
    if not path.exists():
        print("fuzz: no version 2 weights (they need torch to make): version 2 files are not decoded",
              file=sys.stderr)
        return None
    return path


def _make_context_bundle() -> None:
    try:
        import torch
    except ImportError:
        return
    from vaecodec.model.grow import with_context
    from vaecodec.model.hyperprior import HyperpriorModel, ModelConfig
    from vaecodec.model.weights import save_weights

    # As tests/test_context.py makes its model: a small random hyperprior, with context groups
    # whose corrections are not zero (so the integer context networks change every group's tables).
    torch.manual_seed(0)
    model = with_context(HyperpriorModel(ModelConfig(8, 12)).eval(), CONTEXT_GROUPS, hidden=8).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for network in model.context:
            network[-1].weight.normal_(0, 0.05)
            network[-1].bias.normal_(0, 0.05)
    weights_id = save_weights(model, CONTEXT_FOLDER / "context.pt")  # writes the .npz bundle beside it
    print(f"fuzz: made the version 2 weights {weights_id.hex()} in {CONTEXT_FOLDER}", file=sys.stderr)


if __name__ == "__main__" and sys.argv[1:] == ["context-weights"]:
    _make_context_bundle()
