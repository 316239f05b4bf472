"""vaecodec.ray on a local Ray cluster of two CPUs: a folder compressed and decompressed with the
same bytes and pixels as the plain API, and a bad file failing its row alone."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

import vaecodec
from vaecodec.imageio import read_image

vaecodec_ray = pytest.importorskip("vaecodec.ray", exc_type=ImportError)  # skips with the install hint
import ray  # noqa: E402  (installed, as vaecodec.ray imported)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")  # Ray's own settings, not ours


@pytest.fixture(scope="module")
def cluster() -> object:
    """One local cluster for the module: starting Ray takes seconds on two cores."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Three small photos (colour, grayscale, with alpha) and a file that is no image."""
    Image.fromarray(data.astronaut()[40:104, 150:214]).save(tmp_path / "astronaut.png")
    Image.fromarray(data.camera()[100:164, 200:248]).save(tmp_path / "camera.png")
    rgba = np.dstack([data.coffee()[100:148, 200:264], np.full((48, 64), 200, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "coffee.png")
    (tmp_path / "notes.png").write_bytes(b"shopping list")
    return tmp_path


def test_a_folder_compresses_and_decompresses_as_the_plain_api_does(cluster: object, photos: Path) -> None:
    files = ray.data.read_binary_files(str(photos), include_paths=True)
    encoded = vaecodec_ray.compress(files, quality=40, batch_size=2).materialize()
    rows = {Path(row["path"]).name: row for row in encoded.take_all()}
    assert sorted(rows) == ["astronaut.png", "camera.png", "coffee.png", "notes.png"]
    bad = rows.pop("notes.png")
    assert bad["error"] == f"{photos / 'notes.png'}: not a readable image (unknown format)"
    assert bad["vae"] is None and bad["size"] == 0 and np.isnan(bad["bpp"])
    for name, row in rows.items():
        image = read_image(photos / name)
        assert row["error"] is None
        assert row["vae"] == vaecodec.compress(image, quality=40)  # the bytes of `vaecodec encode -q 40`
        assert (row["width"], row["height"], row["size"]) == (*image.size, len(row["vae"]))
        assert row["bpp"] == pytest.approx(8 * row["size"] / (image.width * image.height))
        assert "bytes" not in row

    decoded = {Path(row["path"]).name: row for row in vaecodec_ray.decompress(encoded).take_all()}
    assert decoded["notes.png"]["error"] == bad["error"] and decoded["notes.png"]["image"].size == 0
    for name, row in rows.items():
        expected = np.asarray(vaecodec.decompress(row["vae"]))
        pixels = decoded[name]["image"]
        assert decoded[name]["error"] is None
        assert np.array_equal(pixels, expected if expected.ndim == 3 else expected[..., None])
    assert decoded["camera.png"]["image"].shape == (64, 48, 1)
    assert decoded["coffee.png"]["image"].shape == (48, 64, 4)


def test_the_stage_classes_take_pixel_arrays_in_map_batches(cluster: object) -> None:
    images = [data.astronaut()[:64, :64], data.chelsea()[:64, :64], data.coffee()[:64, :64]]
    dataset = ray.data.from_items([{"id": i, "image": image} for i, image in enumerate(images)])
    encoded = dataset.map_batches(vaecodec_ray.Encoder, fn_constructor_kwargs={"quality": 20}, batch_size=2,
                                  compute=ray.data.ActorPoolStrategy(size=1))
    rows = sorted(encoded.take_all(), key=lambda row: row["id"])
    assert [row["vae"] for row in rows] == [vaecodec.compress(image, quality=20) for image in images]
    assert all(row["error"] is None and "image" not in row for row in rows)


def test_a_stage_fails_rows_not_batches(codec: vaecodec.Codec) -> None:
    png = io.BytesIO()
    Image.fromarray(data.camera()[:32, :32]).save(png, format="PNG")
    batch = {"bytes": np.array([png.getvalue(), b"GIF89a", png.getvalue()[:40]], dtype=object)}
    out = vaecodec_ray.Encoder(quality=10)(batch)
    errors = out["error"].to_pylist()
    assert errors[0] is None and out["size"][0] > 0
    assert errors[1] == "image: not a readable image (unknown format)"
    assert errors[2].startswith("image: not a readable image")
    assert list(out) == ["vae", "width", "height", "size", "bpp", "error"]
    # An empty or damaged .vae file fails its row in the Decoder too; an earlier error is kept.
    vae = np.array([out["vae"][0].as_py(), b"", out["vae"][0].as_py()[:-3], None], dtype=object)
    decoded = vaecodec_ray.Decoder()({"vae": vae, "error": np.array([None, None, None, "earlier"], dtype=object)})
    errors = decoded["error"].to_pylist()
    assert errors[0] is None and decoded["image"][0].shape == (32, 32, 1)
    assert errors[1] and errors[2] and errors[3] == "earlier"
    assert all(image.shape == (0, 0, 3) for image in decoded["image"][1:])
    with pytest.raises(vaecodec.VaecodecError, match="no image or bytes or path column"):
        vaecodec_ray.Encoder()({"pixels": np.zeros(1)})
