"""Fuzz target: Pillow's ``Image.open`` and ``load`` of .vae bytes, through vaecodec's plugin.

Contract: the image loads, with the size and mode ``Image.open`` announced, or raises one of the
errors Pillow documents for a file it cannot read: ``OSError`` (``PIL.UnidentifiedImageError`` is
one), ``SyntaxError`` or ``ValueError``. The plugin (vaecodec/pillow_plugin.py) raises
``VaecodecError``, a ``ValueError``, from ``Image.open`` (the header and checksum) and from
``load`` (the decoder); nothing else may escape. Opening is restricted to the VAE format, so
every input reaches the plugin (other bytes end as UnidentifiedImageError) and the fuzzer's time
goes to vaecodec rather than Pillow's other readers.

    python fuzz/pillow_open.py fuzz/out/pillow_open/corpus fuzz/corpus/pillow_open \\
        -max_total_time=60 -rss_limit_mb=2048 -timeout=10
"""

import io

import common

with common.instrumented():
    import vaecodec  # registers the plugin
    import vaecodec.codec
    import vaecodec.entropy.coder
    import vaecodec.format.container
    import vaecodec.imageio
    import vaecodec.latent.hyperprior
    import vaecodec.model.fixed_point
    import vaecodec.pillow_plugin

from PIL import Image

# What Pillow documents for an unreadable file (UnidentifiedImageError is an OSError; VaecodecError
# a ValueError). DecompressionBombError is not among them: the format's own limit (2**27 pixels)
# is below Pillow's (2 * MAX_IMAGE_PIXELS), so Image.open cannot raise it for a .vae header.
DOCUMENTED = (OSError, SyntaxError, ValueError)


def open_and_load(data: bytes) -> str:
    with Image.open(io.BytesIO(data), formats=["VAE"]) as im:
        size, mode = im.size, im.mode
        im.load()
        if (im.size, im.mode) != (size, mode):
            raise common.ContractViolation(f"Image.open said {size} {mode}, load gave {im.size} {im.mode}")
    return "loaded"


def test_one_input(data: bytes) -> str:
    return common.expect(lambda: open_and_load(data), DOCUMENTED)


if __name__ == "__main__":
    common.run(test_one_input, common.vae_mutator)
