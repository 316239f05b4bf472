"""What a new user meets first (issue 29): the command line without the ``bench`` extra, files of
several frames, and ``vaecodec`` typed alone.

The optional libraries are blocked in one subprocess that runs every case through
``vaecodec.cli.main.main`` (each Python process that imports torch costs about two seconds): an
import hook makes them fail exactly as they do where they are not installed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from PIL import Image, ImageOps

import vaecodec
from vaecodec.extras import BENCH, RAY, SHARDS, Extra, needs_extra
from vaecodec.cli.main import build_parser, main, short_usage
from vaecodec.imageio import read_first_frame

from conftest import not_installed

COMMANDS = tuple(re.search(r"\{([\w,-]+)\}", build_parser().format_usage()).group(1).split(","))
BENCH_MISSING = 'vaecodec: error: the bench needs matplotlib, scikit-image and imagecodecs: pip install "vaecodec[bench]"\n'

# -- without the optional libraries ----------------------------------------------------------------

# The bench extra's modules (scipy comes with scikit-image), and Pillow's optional WebP library.
BLOCKED = ("matplotlib", "skimage", "scipy", "imagecodecs", "PIL._webp", "torch")

DRIVER = not_installed(*BLOCKED) + textwrap.dedent('''
    import contextlib, io, json, traceback

    from vaecodec.cli.main import main

    results = {}
    for case, argv in json.load(sys.stdin).items():
        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                if argv is None:  # as the console script calls it
                    sys.argv = ["vaecodec"]
                    status = main()
                else:
                    status = main(argv)
        except SystemExit as exit:
            status = exit.code
        except BaseException:
            status = "uncaught: " + traceback.format_exc()
        results[case] = [status, out.getvalue(), err.getvalue()]
    imported = sorted(name for name in BLOCKED if name in sys.modules)
    print(json.dumps({"results": results, "imported": imported}))
''')

# case -> (arguments, exit status, what stdout contains, the whole of stderr); {d} is a folder
# holding photo.vae. Each command's --help, then its most common misuse.
CASES: dict[str, tuple[list[str] | None, int, str, str | None]] = {
    "vaecodec alone": (None, 2, "", None),  # the usage; checked in test_bare_command_without_extras
    "--help": (["--help"], 0, "example: vaecodec encode", ""),
    **{f"{command} --help": ([command, "--help"], 0, f"usage: vaecodec {command} ", "") for command in COMMANDS},
    "encode without input": (["encode"], 2, "", "vaecodec: error: the following arguments are required: inputs\n"),
    "encode a missing file": (["encode", "{d}/missing.png"], 1, "", "vaecodec: error: {d}/missing.png: no such file\n"),
    "decode without input": (["decode"], 2, "", "vaecodec: error: the following arguments are required: inputs\n"),
    "decode to WebP without Pillow's WebP": (
        ["decode", "{d}/photo.vae", "-o", "{d}/photo.webp"], 1, "",
        "vaecodec: error: {d}/photo.webp: this Pillow cannot write WEBP (it was built without it)\n"),
    "info of a missing file": (["info", "{d}/missing.vae"], 1, "", "vaecodec: error: {d}/missing.vae: no such file\n"),
    "train on a missing folder": (["train", "{d}/missing"], 1, "", "vaecodec: error: {d}/missing: no such directory\n"),
    "train without its extra": (["train", "{d}"], 1, "",
                                'vaecodec: error: vaecodec train needs torch, pytorch-msssim and onnx: pip install "vaecodec[torch]"\n'),
    "an effort without torch": (["encode", "{d}/photo.png", "-o", "{d}/effort.vae", "--effort", "2"], 1, "",
                                'vaecodec: error: --effort above 1 needs torch, pytorch-msssim and onnx: pip install "vaecodec[torch]"\n'),
    "bench without --out": (["bench", "{d}"], 2, "", "vaecodec: error: the following arguments are required: --out\n"),
    "bench without images": (["bench", "--out", "{d}/out"], 2, "",
                             "vaecodec: error: give either a FOLDER of images or --dataset kodak\n"),
    "bench without its extra": (["bench", "{d}", "--out", "{d}/out"], 1, "", BENCH_MISSING),
}


@pytest.fixture(scope="module")
def without_extras(tmp_path_factory: pytest.TempPathFactory, photo: Image.Image) -> tuple[Path, dict]:
    """The folder of the cases and, per case, [status, stdout, stderr] from the blocked process."""
    folder = tmp_path_factory.mktemp("no extras")
    (folder / "photo.vae").write_bytes(vaecodec.compress(photo.resize((32, 24))))
    photo.resize((32, 24)).save(folder / "photo.png")
    cases = {case: None if argv is None else [a.format(d=folder) for a in argv] for case, (argv, *_) in CASES.items()}
    result = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(cases),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    report = json.loads(result.stdout)
    assert report["imported"] == []  # blocked indeed, and no case needed them
    return folder, report["results"]


@pytest.mark.parametrize("case", [case for case in CASES if case != "vaecodec alone"])
def test_help_and_misuse_without_extras(without_extras: tuple[Path, dict], case: str) -> None:
    folder, results = without_extras
    _, expected_status, expected_out, expected_err = CASES[case]
    status, stdout, stderr = results[case]
    assert status == expected_status, status  # an uncaught exception shows its traceback here
    assert expected_out in stdout
    assert stderr == (expected_err or "").format(d=folder)
    assert not (folder / "out").exists() and not (folder / "photo.webp").exists()


def test_bare_command_without_extras(without_extras: tuple[Path, dict]) -> None:
    status, stdout, stderr = without_extras[1]["vaecodec alone"]
    assert (status, stdout, stderr) == (2, "", short_usage(build_parser()) + "\n")


def test_missing_extra_message() -> None:
    assert f"vaecodec: error: {BENCH.missing}\n" == BENCH_MISSING


@pytest.mark.parametrize("extra", [BENCH, RAY, SHARDS], ids=lambda extra: extra.name)
def test_each_extra_lists_what_pyproject_installs(extra: Extra) -> None:
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    requirements = pyproject["project"]["optional-dependencies"][extra.name]
    assert {re.split(r"[<>=!~\[; ]", r)[0] for r in requirements} == set(extra.packages)


@pytest.mark.parametrize("blocked", ["ray", "pyarrow"])
def test_the_ray_module_without_its_extra_says_which_to_install(blocked: str) -> None:
    """Ray Data brings pyarrow: without the extra, either import fails first, named as the extra."""
    script = not_installed(blocked) + textwrap.dedent("""
        from vaecodec.errors import MissingExtra
        try:
            import vaecodec.ray
        except MissingExtra as exc:
            print(exc)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout == RAY.missing + "\n"


@pytest.mark.parametrize("missing", ["matplotlib", "skimage.metrics", "scipy.ndimage._filters", "imagecodecs"])
def test_needs_extra_names_the_extra(missing: str) -> None:
    with pytest.raises(vaecodec.VaecodecError) as raised, needs_extra(BENCH):
        raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
    assert str(raised.value) == BENCH.missing


def test_needs_extra_leaves_other_import_errors_alone() -> None:
    with pytest.raises(ModuleNotFoundError, match="vaecodec.nothing"), needs_extra(BENCH):
        raise ModuleNotFoundError("No module named 'vaecodec.nothing'", name="vaecodec.nothing")


# -- several frames --------------------------------------------------------------------------------

def _frames(photo: Image.Image) -> list[Image.Image]:
    """Three different pictures of one size."""
    return [photo, ImageOps.invert(photo), photo.rotate(180)]


@pytest.mark.parametrize("name, options", [
    ("anim.gif", {}), ("pages.tif", {}), ("anim.png", {}), ("anim.webp", {"lossless": True}),
])
def test_several_frames_warn_and_code_the_first(tmp_path: Path, photo: Image.Image, capsys, name: str,
                                                options: dict) -> None:
    path = tmp_path / name
    first, *others = _frames(photo)
    first.save(path, save_all=True, append_images=others, **options)
    assert main(["encode", str(path), "-o", str(tmp_path / "out.vae")]) == 0
    assert capsys.readouterr() == ("", f"vaecodec: warning: {path} has 3 frames; coding the first\n")
    with Image.open(path) as im, warnings.catch_warnings():
        warnings.simplefilter("error")  # the API codes the frame an image is on, as Pillow saves it
        expected = vaecodec.compress(im)
        im.seek(1)
        assert vaecodec.compress(im) != expected
    assert (tmp_path / "out.vae").read_bytes() == expected


def test_each_file_of_a_batch_warns_before_the_summary(tmp_path: Path, photo: Image.Image, capsys) -> None:
    small = photo.resize((32, 24))
    first, *others = _frames(small)
    first.save(tmp_path / "a.gif", save_all=True, append_images=others[:1])
    small.save(tmp_path / "b.png")
    assert main(["encode", str(tmp_path)]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"vaecodec: warning: {tmp_path / 'a.gif'} has 2 frames; coding the first"
    assert len(lines) == 2 and lines[1].startswith("vaecodec: 2 files, ")


def test_single_pictures_do_not_warn(tmp_path: Path, photo: Image.Image, capsys) -> None:
    photo.save(tmp_path / "one.png")
    assert main(["encode", str(tmp_path / "one.png")]) == 0
    assert capsys.readouterr() == ("", "")


def test_frames_are_counted_but_a_cameras_previews_are_not(tmp_path: Path, photo: Image.Image) -> None:
    first, *others = _frames(photo)
    first.save(tmp_path / "pages.tif", save_all=True, append_images=others)
    first.save(tmp_path / "camera.jpg", "MPO", save_all=True, append_images=[photo.resize((48, 64))])
    image, frames = read_first_frame(tmp_path / "pages.tif")
    assert frames == 3 and image.tobytes() == photo.tobytes()
    with Image.open(tmp_path / "camera.jpg") as im:
        assert (im.format, im.n_frames) == ("MPO", 2)  # a JPEG with a preview, as many cameras write
    assert read_first_frame(tmp_path / "camera.jpg")[1] == 1


# -- vaecodec alone --------------------------------------------------------------------------------

def test_bare_command_prints_usage_commands_and_example(capsys) -> None:
    assert main([]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[:3] == ["usage: vaecodec COMMAND [options] ...", "", "commands:"]
    assert [line.split()[0] for line in lines[3:3 + len(COMMANDS)]] == list(COMMANDS)
    assert {"encode", "decode", "info", "train", "bench"} <= set(COMMANDS)
    assert re.search(r"^  encode +compress images to \.vae files$", err, re.M)
    assert re.search(r"^  bench +rate-distortion benchmark against JPEG, WebP, AVIF, JPEG XL, JPEG 2000$", err, re.M)
    assert lines[-2:] == ["example: vaecodec encode photo.png -q 60 (writes photo.vae)",
                          "'vaecodec COMMAND --help' shows a command's options."]


def test_help_ends_with_the_example(capsys) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--help"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.rstrip().endswith("example: vaecodec encode photo.png -q 60 (writes photo.vae)")
