"""Every kind of image in: modes, alpha, bit depths, ICC profiles and EXIF orientation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

import vaecodec
import vaecodec.cli.main
from vaecodec.format.container import parse
from vaecodec.imageio import read_image

from conftest import psnr


@pytest.fixture(scope="module")
def alpha(photo: Image.Image) -> Image.Image:
    """A soft-edged alpha ramp with a fully transparent corner."""
    ramp = np.tile(np.linspace(0, 255, photo.width).astype(np.uint8), (photo.height, 1))
    ramp[:10, :10] = 0
    return Image.fromarray(ramp, "L")


def test_rgba_keeps_alpha_losslessly(photo: Image.Image, alpha: Image.Image) -> None:
    rgba = photo.copy()
    rgba.putalpha(alpha)
    out = vaecodec.decompress(vaecodec.compress(rgba))
    assert out.mode == "RGBA" and parse(vaecodec.compress(rgba)).mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], np.asarray(alpha))
    assert psnr(out.convert("RGB"), photo) > 25


def test_rgba_array_is_rgba(photo: Image.Image, alpha: Image.Image) -> None:
    array = np.dstack([np.asarray(photo), np.asarray(alpha)])
    assert vaecodec.decompress(vaecodec.compress(array)).mode == "RGBA"


def test_gray_with_alpha(gray_photo: Image.Image) -> None:
    la = Image.merge("LA", [gray_photo, gray_photo.point(lambda v: 255 - v)])
    out = vaecodec.decompress(vaecodec.compress(la))
    assert out.mode == "LA"
    assert np.array_equal(np.asarray(out)[..., 1], np.asarray(la)[..., 1])


def test_palette_images_expand(photo: Image.Image) -> None:
    palette = photo.quantize(64)
    assert vaecodec.decompress(vaecodec.compress(palette)).mode == "RGB"
    palette.info["transparency"] = 0
    out = vaecodec.decompress(vaecodec.compress(palette))
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], np.asarray(palette.convert("RGBA"))[..., 3])


def test_sixteen_bit_grayscale_is_scaled_to_eight(gray_photo: Image.Image) -> None:
    wide = np.asarray(gray_photo).astype(np.uint16) * 257
    from_array = vaecodec.compress(wide)
    assert parse(from_array).mode == "L"
    assert from_array == vaecodec.compress(gray_photo)
    assert vaecodec.compress(Image.fromarray(wide)) == from_array  # mode I;16


@pytest.mark.parametrize("mode", ["CMYK", "YCbCr", "1", "F"])
def test_other_modes_are_converted(photo: Image.Image, mode: str) -> None:
    image = photo.convert(mode)
    out = vaecodec.decompress(vaecodec.compress(image))
    assert out.size == photo.size and out.mode == ("L" if mode in {"1", "F"} else "RGB")


def test_icc_profile_is_carried_through(photo: Image.Image, tmp_path: Path) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    tagged = photo.copy()
    tagged.info["icc_profile"] = profile
    data = vaecodec.compress(tagged)
    assert parse(data).icc_profile == profile
    assert vaecodec.decompress(data).info["icc_profile"] == profile
    (tmp_path / "tagged.vae").write_bytes(data)
    assert vaecodec.cli.main.main(["decode", str(tmp_path / "tagged.vae"), "-o", str(tmp_path / "out.png")]) == 0
    assert Image.open(tmp_path / "out.png").info.get("icc_profile") == profile


def test_exif_orientation_is_applied(photo: Image.Image, tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    photo.save(path, exif=exif, quality=95)
    upright = read_image(path)
    assert upright.size == (photo.height, photo.width)
    assert vaecodec.decompress(vaecodec.compress(upright)).size == (photo.height, photo.width)


def test_cli_encodes_every_kind(photo: Image.Image, tmp_path: Path) -> None:
    for name, image in {"a.png": photo.convert("RGBA"), "b.tif": photo.convert("CMYK"), "c.gif": photo.quantize(16)}.items():
        image.save(tmp_path / name)
        assert vaecodec.cli.main.main(["encode", str(tmp_path / name)]) == 0
        back = vaecodec.decompress((tmp_path / name).with_suffix(".vae").read_bytes())
        assert back.size == photo.size
