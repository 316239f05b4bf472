"""Batch use of the vaecodec command: folders, globs, --out-dir mirroring, progress, summary, and
one bad file that is reported and skipped while the others complete."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

import vaecodec
from vaecodec.cli.main import main


def run(*args: object) -> int:
    return main([str(a) for a in args])


@pytest.fixture()
def tree(tmp_path: Path, photo: Image.Image) -> Path:
    """in/ with a.png, b.jpg, notes.txt, sub/c.png and sub/deeper/d.webp (small crops of the photo)."""
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    for i, name in enumerate(["a.png", "b.jpg", "sub/c.png", "sub/deeper/d.webp"]):
        photo.crop((0, 0, 64 + 16 * i, 48)).save(root / name)
    (root / "notes.txt").write_text("not an image")
    return root


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_out_dir_mirrors_a_folder_tree(tree: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert run("encode", tree, "--recursive", "--out-dir", out, "-q", 30) == 0
    assert files_under(out) == {"a.vae", "b.vae", "sub/c.vae", "sub/deeper/d.vae"}
    source = Image.open(tree / "sub" / "c.png")
    assert (out / "sub" / "c.vae").read_bytes() == vaecodec.compress(source, quality=30)
    err = capsys.readouterr().err
    total_in = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file() and p.suffix != ".txt")
    total_out = sum(p.stat().st_size for p in out.rglob("*.vae"))
    assert re.fullmatch(rf"vaecodec: 4 files, {total_in:,} -> {total_out:,} bytes, mean \d+\.\d{{3}} bpp\n", err)


def test_a_folder_without_recursive_takes_only_its_own_images(tree: Path) -> None:
    assert run("encode", tree) == 0
    assert files_under(tree) - {"a.png", "b.jpg", "notes.txt", "sub/c.png", "sub/deeper/d.webp"} == {"a.vae", "b.vae"}


def test_globs_are_expanded_and_mirrored_from_their_fixed_part(tree: Path, tmp_path: Path) -> None:
    assert run("encode", tree / "*.png", tree / "**" / "*.webp", "--out-dir", tmp_path / "out") == 0
    assert files_under(tmp_path / "out") == {"a.vae", "sub/deeper/d.vae"}


def test_files_given_directly_go_straight_into_out_dir(tree: Path, tmp_path: Path) -> None:
    assert run("encode", tree / "a.png", tree / "sub" / "c.png", "--out-dir", tmp_path / "new" / "out") == 0
    assert files_under(tmp_path / "new" / "out") == {"a.vae", "c.vae"}


def test_one_bad_file_is_reported_and_the_others_complete(tree: Path, capsys) -> None:
    assert run("encode", tree / "a.png", tree / "notes.txt", tree / "missing.png", tree / "b.jpg") == 1
    assert (tree / "a.vae").exists() and (tree / "b.vae").exists()
    assert not (tree / "notes.vae").exists()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"vaecodec: error: {tree / 'notes.txt'}: not a readable image")
    assert lines[1] == f"vaecodec: error: {tree / 'missing.png'}: no such file"
    assert lines[2].startswith("vaecodec: 2 files, ") and lines[2].endswith("; 2 failed")


def test_existing_outputs_are_skipped_without_force(tree: Path, capsys) -> None:
    (tree / "a.vae").write_bytes(b"keep me")
    assert run("encode", tree / "a.png", tree / "b.jpg") == 1
    assert (tree / "a.vae").read_bytes() == b"keep me" and (tree / "b.vae").exists()
    assert "a.vae exists (use -f to overwrite)" in capsys.readouterr().err
    assert run("encode", tree / "a.png", tree / "b.jpg", "-f") == 0


def test_two_inputs_with_one_output_name_are_not_both_written(tmp_path: Path, photo: Image.Image, capsys) -> None:
    photo.save(tmp_path / "x.png")
    photo.crop((0, 0, 32, 32)).save(tmp_path / "x.jpg")
    assert run("encode", tmp_path / "x.png", tmp_path / "x.jpg", "-f") == 1
    assert "is already that of" in capsys.readouterr().err
    assert (tmp_path / "x.vae").read_bytes() == vaecodec.compress(photo)


def test_the_same_file_named_twice_is_coded_once(tree: Path) -> None:
    assert run("encode", tree / "a.png", tree / "*.png") == 0


def test_decode_a_folder_to_another_format(tree: Path, tmp_path: Path, capsys) -> None:
    run("encode", tree, "-r", "--out-dir", tmp_path / "vae")
    assert run("decode", tmp_path / "vae", "-r", "--format", "webp", "--out-dir", tmp_path / "back") == 0
    assert files_under(tmp_path / "back") == {"a.webp", "b.webp", "sub/c.webp", "sub/deeper/d.webp"}
    assert Image.open(tmp_path / "back" / "sub" / "c.webp").format == "WEBP"
    assert "vaecodec: 4 files, " in capsys.readouterr().err


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: ["encode", d, "-o", d / "x.vae"], "one input"),
        (lambda d: ["encode", d / "a.png", "-o", d / "x.vae", "--out-dir", d], "not both"),
        (lambda d: ["encode", "-"], "stdin needs -o"),
        (lambda d: ["decode", "-", "--out-dir", d], "stdin needs -o"),
        (lambda d: ["encode", d / "*.gif"], "no files match"),
        (lambda d: ["decode", d], "no .vae files in this folder (--recursive looks in subfolders)"),
    ],
)
def test_inputs_that_give_nothing_to_do(tree: Path, capsys, make_args, message: str) -> None:
    before = files_under(tree)
    assert run(*make_args(tree)) == 1
    err = capsys.readouterr().err
    assert err.startswith("vaecodec: error: ") and err.count("\n") == 1 and message in err
    assert files_under(tree) == before


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_on_a_terminal_only(tree: Path, monkeypatch, capsys) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run("encode", tree / "a.png", tree / "b.jpg") == 0
    shown = terminal.getvalue()
    assert "] 0/2 " in shown and "] 1/2 " in shown
    assert "\r\x1b[Kvaecodec: 2 files, " in shown  # the bar is erased before the summary
    monkeypatch.undo()
    assert run("encode", tree / "a.png", tree / "b.jpg", "-f") == 0
    assert "\r" not in capsys.readouterr().err


# A pool of spawned workers takes a few seconds to start (each imports torch and loads the codec):
# two tests start one.


def test_jobs_write_the_same_files_and_report_the_same(tree: Path, tmp_path: Path, capsys) -> None:
    names = [tree / "a.png", tree / "notes.txt", tree / "b.jpg", tree / "sub" / "c.png", tree / "sub" / "deeper" / "d.webp"]
    assert run("encode", *names, "--out-dir", tmp_path / "one", "-j", 1) == 1
    one = capsys.readouterr().err
    assert run("encode", *names, "--out-dir", tmp_path / "two", "-j", 2) == 1
    two = capsys.readouterr().err
    assert files_under(tmp_path / "two") == files_under(tmp_path / "one") == {"a.vae", "b.vae", "c.vae", "d.vae"}
    for name in files_under(tmp_path / "one"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    assert two.splitlines()[0].startswith(f"vaecodec: error: {tree / 'notes.txt'}: not a readable image")
    assert two == one and two.splitlines()[1].endswith("; 1 failed")


def test_ctrl_c_stops_a_pool_cleanly(tmp_path: Path, photo: Image.Image) -> None:
    """SIGINT to the process group, as Ctrl-C on a terminal sends it, in the middle of ``-j 2``:
    one line and no traceback, exit status 130, the finished files whole and no temporary files."""
    (tmp_path / "in").mkdir()
    for i in range(40):
        photo.save(tmp_path / "in" / f"{i:02d}.png")
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "vaecodec.cli.main", "encode", str(tmp_path / "in"), "--out-dir", str(out), "-j", "2"],
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("*.vae")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)
    assert process.communicate(timeout=120)[1] == "vaecodec: error: interrupted\n"
    assert process.returncode == 130
    finished = list(out.iterdir())
    assert 0 < len(finished) < 40 and all(path.suffix == ".vae" for path in finished)
    assert {path.read_bytes() for path in finished} == {vaecodec.compress(photo)}
