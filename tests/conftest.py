"""Shared fixtures: small photos from scikit-image's bundled data and one loaded codec."""

from __future__ import annotations

import textwrap
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import data
from skimage import data as samples  # noqa: F401 (the name the determinism tests use)

import vaecodec
from vaecodec.codec import get_codec
from vaecodec import metrics


try:  # the torch extra; the core install's tests run without it
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs the torch extra")

if torch is not None:
    # One thread: the suite is not timed, and training often runs beside it on this project's 2 cores.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def codec() -> vaecodec.Codec:
    return get_codec()


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A 96x128 RGB photo (the astronaut's face and shoulder)."""
    return Image.fromarray(data.astronaut()[40:136, 150:278])


@pytest.fixture(scope="session")
def gray_photo() -> Image.Image:
    """A 80x100 grayscale photo (the camera man)."""
    return Image.fromarray(data.camera()[100:180, 200:300])


def psnr(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray) -> float:
    return metrics.psnr(np.asarray(a), np.asarray(b))


def reseal(body: bytes) -> bytes:
    """A .vae body with its CRC32 trailer recomputed: changed fields get past the checksum."""
    return bytes(body) + zlib.crc32(body).to_bytes(4, "little")


def not_installed(*modules: str) -> str:
    """The start of a script for a fresh interpreter: an import hook makes ``modules`` and their
    submodules fail to import exactly as they do where they are not installed (``BLOCKED`` names
    them)."""
    return textwrap.dedent(f'''
        import sys

        BLOCKED = {modules!r}


        class NotInstalled:
            def find_spec(self, name, path=None, target=None):
                if any(name == blocked or name.startswith(blocked + ".") for blocked in BLOCKED):
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None


        sys.meta_path.insert(0, NotInstalled())
    ''')
