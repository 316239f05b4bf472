"""Pillow support for .vae files, registered by ``import vaecodec``.

After the import, ``Image.open("x.vae")`` reads the header at once (size; the original's mode,
RGB, L, RGBA or LA; its ICC profile in ``info``) and runs the networks only when the pixels are
needed, like any lazy Pillow format; ``im.save("x.vae", quality=60)`` writes exactly
``vaecodec.compress(im, 60)`` (``size=``, ``bpp=`` and ``psnr=`` targets work too, and ``effort=``).
Both use the shared CPU codec of ``vaecodec.api``. A damaged .vae
file raises ``VaecodecError`` (a ``ValueError``) from ``Image.open`` with the reason, rather than
Pillow's vaguer "cannot identify image file".
"""

from __future__ import annotations

from typing import IO

from PIL import Image, ImageFile

from vaecodec.format.container import MAGIC, parse

FORMAT = "VAE"
EXTENSION = ".vae"
MIME_TYPE = "image/x-vae"


def _accept(prefix: bytes) -> bool:
    return prefix[: len(MAGIC)] == MAGIC


class VaeImageFile(ImageFile.ImageFile):
    """A .vae file opened by Pillow: the header is parsed on open, decoding waits for ``load``."""

    format = FORMAT
    format_description = "vaecodec learned image codec"

    def _open(self) -> None:
        assert self.fp is not None
        start = self.fp.tell()
        # The whole file is read (they are small) so that its checksum is verified up front.
        file = parse(self.fp.read())
        self._size = (file.width, file.height)
        self._mode = file.mode
        if file.icc_profile:
            self.info["icc_profile"] = file.icc_profile
        self.tile = [(FORMAT, (0, 0, file.width, file.height), start, None)]  # type: ignore[list-item]


class VaeDecoder(ImageFile.PyDecoder):
    """Decodes the whole file in one call: the networks cannot work tile by tile."""

    _pulls_fd = True

    def decode(self, buffer: object) -> tuple[int, int]:  # the data is pulled from self.fd
        assert self.fd is not None
        from vaecodec.codec import get_codec  # the engine loads with the first decode, not with the plugin

        image = get_codec().decompress(self.fd.read())
        self.set_as_raw(image.tobytes(), image.mode)
        return -1, 0


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """Pillow's save hook: ``quality`` (0-100, default 75), or a ``size``, ``bpp`` or ``psnr`` target;
    ``effort`` (1-9, default 1); ``tune`` ("psnr", the default, or "ssim")."""
    from vaecodec.api import compress  # the engine loads with the first save, not with the plugin
    from vaecodec.effort import DEFAULT_EFFORT
    from vaecodec.tunes import DEFAULT_TUNE

    options = im.encoderinfo
    fp.write(compress(im, options.get("quality"), size=options.get("size"), bpp=options.get("bpp"),
                      psnr=options.get("psnr"), effort=options.get("effort", DEFAULT_EFFORT),
                      tune=options.get("tune", DEFAULT_TUNE)))


def register() -> None:
    """Teach Pillow the format; idempotent, called by ``import vaecodec``."""
    Image.register_open(FORMAT, VaeImageFile, _accept)
    Image.register_decoder(FORMAT, VaeDecoder)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME_TYPE)
