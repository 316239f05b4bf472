"""Fuzz target: ``compress`` of arbitrary image files, read as the command line reads them.

The bytes are opened by ``vaecodec.imageio.read_first_frame`` (what ``vaecodec encode`` uses:
Pillow, EXIF orientation, the dimension check, the first frame), then coded by
``vaecodec.compress`` (modes, 16-bit and float reduction, alpha, ICC profiles) at a quality taken
from the bytes' CRC32 (0 to 100 in steps of 0.01), and the file is decoded again.

Contract: the image codes to a file that decodes to an image of its size and of the mode vaecodec
keeps (RGB, L, RGBA or LA), or ``VaecodecError`` is raised; nothing else (common.py). Images over
256x256 (by their header) are left out before any pixel is decoded, so each input stays fast.

    python fuzz/compress.py fuzz/out/compress/corpus fuzz/corpus/compress -max_total_time=60 -rss_limit_mb=2048 -timeout=10
"""

import io
import zlib

import common

with common.instrumented():
    import vaecodec
    import vaecodec.api
    import vaecodec.codec
    import vaecodec.entropy.coder
    import vaecodec.format.container
    import vaecodec.imageio
    import vaecodec.latent.hyperprior
    import vaecodec.model.fixed_point
    import vaecodec.pillow_plugin
    from vaecodec.errors import VaecodecError
    from vaecodec.imageio import read_first_frame

from PIL import Image

LARGEST = 256  # pixels a side


def too_large(data: bytes) -> bool:
    """Whether the image's header claims more than LARGEST x LARGEST (what Pillow cannot open is
    left to read_first_frame, which must refuse it by the contract)."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            return max(probe.size) > LARGEST
    except Exception:
        return False


def compress(data: bytes) -> str:
    if too_large(data):
        return "over 256x256: left out"
    image, _ = read_first_frame(io.BytesIO(data))
    if max(image.size) > LARGEST:  # a header that understated the size
        return "over 256x256 once loaded: left out"
    coded = vaecodec.compress(image, quality=zlib.crc32(data) % 10001 / 100)
    decoded = vaecodec.decompress(coded)
    if decoded.size != image.size or decoded.mode not in ("RGB", "L", "RGBA", "LA"):
        raise common.ContractViolation(f"a {image.size} {image.mode} image decoded to {decoded.size} {decoded.mode}")
    return f"coded mode {image.mode}"


def test_one_input(data: bytes) -> str:
    return common.expect(lambda: compress(data), (VaecodecError,))


if __name__ == "__main__":
    common.run(test_one_input)
