"""The vaecodec command: encode/decode/info round trips and one-line errors that leave no files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vaecodec
from vaecodec.cli.main import main

from conftest import not_installed, psnr


@pytest.fixture()
def photo_file(tmp_path: Path, photo: Image.Image) -> Path:
    path = tmp_path / "photo.png"
    photo.save(path)
    return path


def run(*args: str) -> int:
    return main([str(a) for a in args])


def test_encode_decode_round_trip(photo_file: Path, photo: Image.Image) -> None:
    assert run("encode", photo_file) == 0
    vae = photo_file.with_suffix(".vae")
    assert vae.read_bytes() == vaecodec.compress(photo)
    umask = os.umask(0)
    os.umask(umask)
    assert vae.stat().st_mode & 0o777 == 0o666 & ~umask  # not the private mode of a temporary file
    out = photo_file.parent / "back.png"
    assert run("decode", vae, "-o", out) == 0
    assert Image.open(out).size == photo.size
    assert psnr(Image.open(out).convert("RGB"), photo) > 27


def test_quality_option_and_default_output_name(photo_file: Path, photo: Image.Image) -> None:
    out = photo_file.parent / "q30.vae"
    assert run("encode", photo_file, "-q", "30", "-o", out) == 0
    assert out.read_bytes() == vaecodec.compress(photo, quality=30)
    assert run("decode", out) == 0
    assert out.with_suffix(".png").exists()


def test_several_inputs_are_each_written_beside_themselves(tmp_path: Path, photo: Image.Image) -> None:
    names = [tmp_path / "a.png", tmp_path / "b.jpg"]
    for name in names:
        photo.save(name)
    assert run("encode", *names) == 0
    assert all(name.with_suffix(".vae").exists() for name in names)


@pytest.mark.parametrize("extension, fmt", [(".jpg", "JPEG"), (".webp", "WEBP"), (".bmp", "BMP")])
def test_decode_format_follows_the_extension(photo_file: Path, extension: str, fmt: str) -> None:
    run("encode", photo_file)
    out = photo_file.with_suffix(extension)
    assert run("decode", photo_file.with_suffix(".vae"), "-o", out) == 0
    assert Image.open(out).format == fmt


def test_existing_outputs_need_force(photo_file: Path, capsys) -> None:
    vae = photo_file.with_suffix(".vae")
    vae.write_bytes(b"keep me")
    assert run("encode", photo_file) == 1
    assert "exists" in capsys.readouterr().err
    assert vae.read_bytes() == b"keep me"
    assert run("encode", photo_file, "-f") == 0
    assert vae.read_bytes().startswith(b"VAEC")


def test_info_lists_the_header(photo_file: Path, capsys) -> None:
    run("encode", photo_file, "-q", "42.5")
    capsys.readouterr()
    assert run("info", photo_file.with_suffix(".vae")) == 0
    text = capsys.readouterr().out
    assert "128x96 RGB" in text and "42.5" in text and "bits per pixel" in text
    assert vaecodec.Codec().weights_id.hex() in text


def test_stdout_output(photo_file: Path, photo: Image.Image, capfdbinary) -> None:
    assert run("encode", photo_file, "-o", "-") == 0
    assert capfdbinary.readouterr().out == vaecodec.compress(photo)


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d: ["encode", d / "missing.png"], "no such file"),
        (lambda d: ["encode", d / "notes.txt"], "not a readable image"),
        (lambda d: ["encode", d / "photo.png", "-q", "1000"], "quality"),
        (lambda d: ["encode", d / "photo.png", "-q", "high"], "quality"),
        (lambda d: ["encode", d / "photo.png", d / "photo.png", "-o", d / "x.vae"], "one input"),
        (lambda d: ["decode", d / "notes.txt", "-o", d / "x.png"], "not a .vae file"),
        (lambda d: ["decode", d / "bad.vae", "-o", d / "x.png"], "checksum"),
        (lambda d: ["decode", d / "bad.vae", "-o", d / "x.xyz"], "extension"),
        (lambda d: ["encode", d / "photo.png", "-o", d / "nodir" / "x.vae"], "no such directory"),
        (lambda d: ["info", d / "notes.txt"], "not a .vae file"),
        (lambda d: ["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_gives_one_line_and_no_output(tmp_path: Path, photo: Image.Image, capsys, make_args, message: str) -> None:
    photo.save(tmp_path / "photo.png")
    (tmp_path / "notes.txt").write_text("not an image")
    good = vaecodec.compress(photo)
    (tmp_path / "bad.vae").write_bytes(good[:40] + bytes([good[40] ^ 0xFF]) + good[41:])
    before = set(tmp_path.iterdir())
    assert run(*make_args(tmp_path)) != 0
    err = capsys.readouterr().err
    assert err.startswith("vaecodec: error: ") and err.count("\n") == 1 and message in err
    assert set(tmp_path.iterdir()) == before


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "empty.vae").write_bytes(b"")
    result = subprocess.run(
        [sys.executable, "-m", "vaecodec.cli.main", "decode", str(tmp_path / "empty.vae")],
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert result.stderr == "vaecodec: error: not a .vae file (wrong magic bytes)\n"
    assert not (tmp_path / "empty.png").exists()


def test_stdin_input(photo_file: Path, photo: Image.Image, tmp_path: Path) -> None:
    out = tmp_path / "from_stdin.vae"
    result = subprocess.run(
        [sys.executable, "-m", "vaecodec.cli.main", "encode", "-", "-o", str(out)],
        input=photo_file.read_bytes(), capture_output=True,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == vaecodec.compress(photo)
    decoded = subprocess.run(
        [sys.executable, "-m", "vaecodec.cli.main", "decode", "-", "-o", "-"],
        input=out.read_bytes(), capture_output=True,
    )
    assert np.array_equal(np.asarray(Image.open(__import__("io").BytesIO(decoded.stdout))), np.asarray(vaecodec.decompress(out.read_bytes())))


def test_ctrl_c_while_the_engine_loads_is_one_line(tmp_path: Path, photo: Image.Image) -> None:
    """Importing vaecodec does not load the engine; the command does, inside its Ctrl-C handling.
    An import hook raises KeyboardInterrupt where the engine's import begins (OpenVINO's where it is
    installed, else ONNX Runtime's), as Ctrl-C would there."""
    photo.save(tmp_path / "in.png")
    script = textwrap.dedent("""
        import sys
        class CtrlC:
            def find_spec(self, name, path=None, target=None):
                if name in ("onnxruntime", "openvino"):
                    raise KeyboardInterrupt
        sys.meta_path.insert(0, CtrlC())
        import vaecodec
        from vaecodec.cli.main import main
        sys.exit(main(sys.argv[1:]))
    """)
    result = subprocess.run([sys.executable, "-c", script, "encode", str(tmp_path / "in.png")], capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (130, "vaecodec: error: interrupted\n")
    assert list(tmp_path.iterdir()) == [tmp_path / "in.png"]


def test_coding_never_loads_torch(tmp_path: Path, photo: Image.Image) -> None:
    """encode, decode and info on the core install's engine: torch is not imported (a hook fails
    any import of it), so an install without the torch extra codes images."""
    photo.save(tmp_path / "in.png")
    script = not_installed("torch") + textwrap.dedent("""
        from vaecodec.cli.main import main
        for command in (["encode", "in.png", "-q", "40"], ["decode", "in.vae", "-o", "out.png"], ["info", "in.vae"]):
            assert main(command) == 0, command
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out.png").size == photo.size


def test_version_names_the_engines_and_autos_choice(capsys) -> None:
    """``--version`` gives vaecodec's version, then every engine, installed with its version or not
    with the extra that installs it, and marks the one "auto" runs on the CPU."""
    from vaecodec import __version__
    from vaecodec.engine import ENGINES, auto_engine, installed

    with pytest.raises(SystemExit) as exited:
        run("--version")
    assert exited.value.code == 0
    first, engines = capsys.readouterr().out.splitlines()
    assert first == f"vaecodec {__version__}"
    described = dict(part.split(" ", 1) for part in engines.removeprefix("engines: ").split(", "))
    assert set(described) == set(ENGINES)
    for name, text in described.items():
        assert text.startswith("not installed (pip install") != installed(name)
    assert [name for name, text in described.items() if text.endswith("(auto's choice)")] == [auto_engine()]
