"""Fuzz target: ``vaecodec info FILE`` of any bytes, through the command line's own function.

Contract: ``vaecodec.cli.main.main(["info", path])`` returns 0 (the header is printed) or 1 (one
error line), and raises nothing: the command turns VaecodecError into its message and status, so
any exception out of ``main`` (or another status) is a failure. The bytes go to a temporary
file that is rewritten for each input; the output is captured, not printed.

    python fuzz/info.py fuzz/out/info/corpus fuzz/corpus/info -max_total_time=60 -rss_limit_mb=2048 -timeout=10
"""

import contextlib
import io
import tempfile
from pathlib import Path

import common

with common.instrumented():
    import vaecodec
    import vaecodec.cli.main
    import vaecodec.format.container
    import vaecodec.model.bundle
    from vaecodec.cli.main import main

FILE = Path(tempfile.mkdtemp(prefix="vaecodec-fuzz-info-")) / "input.vae"


def info(data: bytes) -> str:
    FILE.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["info", str(FILE)])
    if status == 0 and "bits per pixel" in out.getvalue() and not err.getvalue():
        return "printed"
    if status == 1 and err.getvalue().startswith("vaecodec: error: ") and err.getvalue().count("\n") == 1:
        return f"status 1: {common.error_kind(ValueError(err.getvalue().strip()))}"
    raise common.ContractViolation(f"status {status}, stdout {out.getvalue()!r}, stderr {err.getvalue()!r}")


def test_one_input(data: bytes) -> str:
    return common.expect(lambda: info(data), ())


if __name__ == "__main__":
    common.run(test_one_input, common.vae_mutator)
