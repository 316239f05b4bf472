"""The images a bench runs on: any folder of photos, or the Kodak set fetched once into a user cache."""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from vaecodec.errors import VaecodecError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff", ".webp"}
KODAK_NAMES = [f"kodim{index:02d}.png" for index in range(1, 25)]
KODAK_URL = "http://r0k.us/graphics/kodak/kodak/{name}"
_KODAK_PATTERN = re.compile(r"kodim\d\d\.png")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def list_images(folder: Path, limit: int | None = None) -> list[Path]:
    """The image files directly in ``folder``, sorted by name, the first ``limit`` of them."""
    if not folder.is_dir():
        raise VaecodecError(f"{folder}: no such directory")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise VaecodecError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths[:limit]


def is_kodak(paths: list[Path]) -> bool:
    """Whether these are Kodak images, the set the published anchors were measured on."""
    return all(_KODAK_PATTERN.fullmatch(path.name) for path in paths)


def kodak_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vaecodec" / "kodak"


def kodak_folder(limit: int | None = None) -> Path:
    """The cache folder holding the first ``limit`` Kodak images, downloading the missing ones."""
    folder = kodak_cache()
    missing = [name for name in KODAK_NAMES[:limit] if not (folder / name).is_file()]
    for name in missing:
        url = KODAK_URL.format(name=name)
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                data = response.read()
            if not data.startswith(_PNG_MAGIC):
                raise OSError(f"{url} did not return a PNG")
        except (urllib.error.URLError, OSError) as exc:
            raise VaecodecError(
                f"could not download the Kodak images ({getattr(exc, 'reason', exc)}); put kodim01.png .. "
                f"kodim24.png into {folder}, or pass the folder that holds them instead of --dataset kodak"
            ) from None
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{name}.part"
        partial.write_bytes(data)
        partial.replace(folder / name)
    return folder
