"""vaecodec: a learned image codec (a VAE with a mean-scale hyperprior and ANS entropy coding).

    >>> import vaecodec
    >>> data = vaecodec.compress(image, quality=75)   # PIL image, uint8 array or float tensor
    >>> image = vaecodec.decompress(data)              # PIL image

``Codec`` keeps a model loaded on a chosen device for pipelines (it pickles cheaply to
``DataLoader`` workers); ``VaecodecError`` is the one exception type raised for unusable images,
files and options. Importing the package teaches Pillow the format: ``Image.open("x.vae")`` and
``im.save("x.vae", quality=60)`` work (see ``vaecodec.pillow_plugin``).
"""

from vaecodec import pillow_plugin
from vaecodec.api import compress, decompress
from vaecodec.codec import Codec
from vaecodec.errors import VaecodecError

pillow_plugin.register()

__version__ = "0.1.0"
__all__ = ["Codec", "VaecodecError", "compress", "decompress", "__version__"]
