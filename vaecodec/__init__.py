"""vaecodec: a learned image codec (a VAE with a mean-scale hyperprior and ANS entropy coding).

    >>> import vaecodec
    >>> data = vaecodec.compress(image, quality=75)   # PIL image, uint8 array or float tensor
    >>> image = vaecodec.decompress(data)              # PIL image

``Codec`` keeps a model loaded on a chosen device for pipelines (it pickles cheaply to
``DataLoader`` workers); ``VaecodecError`` is the one exception type raised for unusable images,
files and options. Importing the package teaches Pillow the format: ``Image.open("x.vae")`` and
``im.save("x.vae", quality=60)`` work (see ``vaecodec.pillow_plugin``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from vaecodec import pillow_plugin
from vaecodec.errors import VaecodecError

if TYPE_CHECKING:
    from vaecodec.api import compress, decompress
    from vaecodec.codec import Codec
    from vaecodec.generative import interpolate, sample
    from vaecodec.inspection import inspect

pillow_plugin.register()

__version__ = "0.1.0"
__all__ = ["Codec", "VaecodecError", "compress", "decompress", "inspect", "interpolate", "sample", "__version__"]


_LAZY = {"compress": "vaecodec.api", "decompress": "vaecodec.api", "Codec": "vaecodec.codec",
         "inspect": "vaecodec.inspection", "sample": "vaecodec.generative", "interpolate": "vaecodec.generative"}


def __getattr__(name: str) -> object:
    """Load the engine and the model on first use: ``vaecodec --help`` and ``info`` start at once,
    and Ctrl-C while they load ends the command with its one-line message."""
    if name not in _LAZY:
        raise AttributeError(f"module 'vaecodec' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups find it directly
    return value
