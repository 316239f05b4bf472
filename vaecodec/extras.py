"""Optional dependencies, named in one line when they are missing.

A plain ``pip install vaecodec`` leaves out what only some commands and modules use (the extras of
pyproject.toml): the ``bench`` extra brings matplotlib, scikit-image (with scipy, which the bench
also imports) and imagecodecs, ``ray`` brings Ray Data (with pyarrow) for ``vaecodec.ray``,
``shards`` WebDataset for ``vaecodec.shards``, ``openvino`` OpenVINO, the fastest engine on the
CPU (``vaecodec.engine``), and ``torch`` (PyTorch and pytorch-msssim) what needs gradients or torch
tensors: training, ``--effort`` above 1, the torch engine (``--device cuda``), and the tensor
methods. Such packages are imported inside ``needs_extra``, which turns the ModuleNotFoundError of
a missing one into a ``MissingExtra`` (a VaecodecError and an ImportError) saying ``the bench
needs matplotlib, scikit-image and imagecodecs: pip install "vaecodec[bench]"``, which the command
line prints as its one-line error, instead of a traceback from deep inside. Other import failures
(a bug, a module of vaecodec itself) still propagate.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator

from vaecodec.errors import MissingExtra


@dataclass(frozen=True)
class Extra:
    """An optional-dependency group of pyproject.toml, as a user meets it."""

    name: str  # as in pip install "vaecodec[NAME]"
    user: str  # what needs it, in messages: "the bench"
    packages: tuple[str, ...]  # the distributions it installs, as pyproject.toml lists them
    modules: frozenset[str]  # the top-level modules whose absence means the extra is missing

    @property
    def install(self) -> str:
        return f'pip install "vaecodec[{self.name}]"'

    @property
    def missing(self) -> str:
        """The error: ``the bench needs matplotlib, scikit-image and imagecodecs: pip install ...``."""
        *rest, last = self.packages
        listed = f"{', '.join(rest)} and {last}" if rest else last
        return f"{self.user} needs {listed}: {self.install}"

    def needed_by(self, user: str) -> Extra:
        """The same extra, for another user in its message."""
        return replace(self, user=user)


BENCH = Extra("bench", "the bench", ("matplotlib", "scikit-image", "imagecodecs"),
              frozenset({"matplotlib", "skimage", "scipy", "imagecodecs"}))
# ``vaecodec inspect`` draws its figures with matplotlib, which the bench extra brings.
PLOTS = Extra("bench", "vaecodec inspect", ("matplotlib",), frozenset({"matplotlib"}))
RAY = Extra("ray", "vaecodec's Ray module", ("ray",), frozenset({"ray", "pyarrow"}))
SHARDS = Extra("shards", "reading shards", ("webdataset",), frozenset({"webdataset"}))
TORCH = Extra("torch", "training", ("torch", "pytorch-msssim", "onnx"), frozenset({"torch", "torchvision", "pytorch_msssim", "onnx"}))
OPENVINO = Extra("openvino", "the openvino engine", ("openvino",), frozenset({"openvino"}))


@contextmanager
def needs_extra(extra: Extra) -> Iterator[None]:
    """Run imports that need ``extra``; a module of it that is missing becomes a MissingExtra."""
    try:
        yield
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] not in extra.modules:
            raise
        raise MissingExtra(extra.missing) from None
