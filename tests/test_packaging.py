"""What users install: the built wheel holds every package of vaecodec/, the weights and py.typed (issue 38).

The editable install of the checkout cannot show a file missing from the wheel (the source folder is on
the path), so this builds the distributions as a release does: the sdist from a copy of the checkout,
then the wheel from that sdist (what ``python -m build`` does), with setuptools' own hooks, offline and
without build isolation (it needs setuptools>=77 here: ``pip install 'setuptools>=77'``; without it the
tests skip, except in CI, which sets VAECODEC_REQUIRE_PACKAGING_TEST). A copy, never the checkout itself:
setuptools' build/ folder and an old vaecodec.egg-info keep files of earlier builds, which setuptools packs
anyway, and would hide a package left out now.

.ci/run also installs the wheel in a fresh environment and uses it from outside the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = "VAECODEC_REQUIRE_PACKAGING_TEST"
# Runs one PEP 517 hook of setuptools in the current folder: "build_sdist" or "build_wheel", then the output folder.
HOOK = "import sys, setuptools.build_meta as backend; getattr(backend, sys.argv[1])(sys.argv[2])"
# Never part of a build: version control, environments, build outputs, caches, training runs (at the top), and
# anywhere, caches and egg-info (an old one lists files that setuptools then packs anyway, hiding a missing package).
SKIPPED_AT_TOP = {".git", ".venv", "build", "dist", "runs", ".pytest_cache", ".hypothesis"}


def _skipped(path: Path) -> bool:
    return path.parts[0] in SKIPPED_AT_TOP or any(part == "__pycache__" or part.endswith(".egg-info")
                                                  for part in path.parts)


def _skip_or_fail(reason: str) -> None:
    if os.environ.get(REQUIRED):
        pytest.fail(f"{reason} ({REQUIRED} is set)")
    pytest.skip(reason)


def _checkout_files() -> list[Path]:
    """The checkout's files as a commit would hold them: tracked or untracked, but not ignored by git."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout.decode().split("\0")
        files = [Path(name) for name in listed if name]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout: every file but the usual outputs
        files = []
        for folder, subfolders, names in os.walk(ROOT):
            here = Path(folder).relative_to(ROOT)
            subfolders[:] = [name for name in subfolders if not _skipped(here / name)]
            files += [here / name for name in names]
    return [path for path in files if (ROOT / path).is_file() and not _skipped(path)]


def _hook(name: str, source: Path, out: Path) -> Path:
    result = subprocess.run([sys.executable, "-c", HOOK, name, str(out)], cwd=source, capture_output=True, text=True)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    (built,) = out.iterdir()
    return built


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from the sdist of (a copy of) the checkout."""
    try:
        found = version("setuptools")
    except PackageNotFoundError:
        found = None
    if found is None or int(found.split(".")[0]) < 77:
        _skip_or_fail(f"building the wheel needs setuptools>=77 (found {found}): pip install 'setuptools>=77'")
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "checkout"
    for path in _checkout_files():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, source / path)
    sdist = _hook("build_sdist", source, tmp / "sdist")
    with tarfile.open(sdist) as archive:
        # The "data" filter where this Python has it (3.10.12, 3.11.4 and later).
        archive.extractall(tmp / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (unpacked,) = (tmp / "unpacked").iterdir()
    return _hook("build_wheel", unpacked, tmp / "wheel")


@pytest.fixture(scope="module")
def wheel(built_wheel: Path) -> set[str]:
    """The names of the files in the wheel."""
    with zipfile.ZipFile(built_wheel) as archive:
        return set(archive.namelist())


def _source_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and "__pycache__" not in path.parts]


def test_every_package_of_vaecodec_is_in_the_wheel(wheel: set[str]) -> None:
    packages = sorted(init.parent.relative_to(ROOT).as_posix() for init in (ROOT / "vaecodec").rglob("__init__.py")
                      if "__pycache__" not in init.parts)
    assert "vaecodec/latent" in packages  # the one that was missing (issue 38)
    missing = [package for package in packages if f"{package}/__init__.py" not in wheel]
    assert not missing, f"package folders missing from the wheel (setup.py finds the packages): {missing}"
    # A module in a folder without __init__.py imports from the checkout (a namespace package) but is not packaged.
    modules = sorted(path.relative_to(ROOT).as_posix() for path in _source_files(ROOT / "vaecodec")
                     if path.suffix == ".py")
    missing = [module for module in modules if module not in wheel]
    assert not missing, f"modules missing from the wheel (does their folder lack an __init__.py?): {missing}"


def test_the_weights_are_in_the_wheel(wheel: set[str]) -> None:
    """Every file of weights/ (the .pt files, and any other kind shipped beside them), as vaecodec.weights."""
    files = sorted(path.relative_to(ROOT / "weights").as_posix() for path in _source_files(ROOT / "weights"))
    assert "vaecodec-default.pt" in files
    missing = [name for name in files if f"vaecodec/weights/{name}" not in wheel]
    assert not missing, (f"weights files missing from the wheel (add their pattern to "
                         f"[tool.setuptools.package-data] 'vaecodec.weights' in pyproject.toml): {missing}")


def test_py_typed_and_the_bench_configuration_are_in_the_wheel(wheel: set[str]) -> None:
    expected = {"vaecodec/py.typed", "vaecodec/bench_config/__init__.py",
                "vaecodec/bench_config/config.json", "vaecodec/bench_config/anchors.json"}
    assert not expected - wheel, f"missing from the wheel: {sorted(expected - wheel)}"


def test_the_wheel_installs_vaecodec_only(wheel: set[str], built_wheel: Path) -> None:
    """bench/, weights/, tests/ are never top-level packages of their own; the command is installed."""
    tops = {name.split("/")[0] for name in wheel}
    others = {top for top in tops if top != "vaecodec" and not top.endswith(".dist-info")}
    assert not others, f"the wheel installs more than vaecodec: {sorted(others)}"
    (entry_points,) = (name for name in wheel if name.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(built_wheel) as archive:
        assert "vaecodec = vaecodec.cli.main:main" in archive.read(entry_points).decode()
