"""WebDataset shards: a folder into tar shards of .vae files (the command line and ShardWriter),
and back through a DataLoader's workers as the tensors ``decompress_tensor`` gives."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

import vaecodec
from vaecodec.cli.main import main
from vaecodec.shards import ShardWriter, sample_key, write_shards

from conftest import needs_torch, torch


def members(shard: str | Path) -> dict[str, bytes]:
    with tarfile.open(shard) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of four small photos (one in a subfolder, one with dots in its name) and a bad file."""
    folder = tmp_path / "photos"
    (folder / "trip").mkdir(parents=True)
    Image.fromarray(data.astronaut()[40:104, 150:214]).save(folder / "astronaut.png")
    Image.fromarray(data.camera()[100:164, 200:264]).save(folder / "camera.png")
    Image.fromarray(data.coffee()[100:148, 200:264]).save(folder / "trip" / "coffee.2024.jpg", quality=95)
    Image.fromarray(data.chelsea()[50:114, 100:164]).save(folder / "trip" / "cat.png")
    (folder / "trip" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return folder


def test_keys_are_paths_without_extensions_and_their_dots(tmp_path: Path) -> None:
    assert sample_key("a.vae") == "a"
    assert sample_key("trip/coffee.2024.vae") == "trip/coffee_2024"
    assert sample_key(".hidden.vae") == "_hidden"


def test_shards_hold_at_most_their_files_and_bytes_and_are_named_in_braces(tmp_path: Path) -> None:
    pattern = str(tmp_path / "s-%04d.tar")
    samples = [(f"k{i}", bytes([i]) * 700) for i in range(5)]
    assert write_shards(samples, pattern, max_files=2) == [pattern % i for i in range(3)]
    assert list(members(pattern % 2)) == ["k4.vae"]
    assert members(pattern % 0) == {"k0.vae": samples[0][1], "k1.vae": samples[1][1]}
    # Each sample takes 512 + 1024 bytes of tar: three fit in 4,608.
    with ShardWriter(str(tmp_path / "b-%d.tar"), max_bytes=3 * 1536) as writer:
        for key, value in samples:
            writer.add(key, value)
    assert [len(members(name)) for name in writer.shards] == [3, 2]
    assert writer.braces() == f"{tmp_path}/b-{{0..1}}.tar"


def test_a_failing_run_leaves_only_complete_shards(tmp_path: Path) -> None:
    pattern = str(tmp_path / "s-%d.tar")
    with pytest.raises(KeyboardInterrupt):
        with ShardWriter(pattern, max_files=1) as writer:
            writer.add("a", b"1")
            writer.add("b", b"2")  # completes s-0.tar
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s-0.tar"]
    with pytest.raises(vaecodec.VaecodecError, match="exists"):
        ShardWriter(pattern)
    with pytest.raises(vaecodec.VaecodecError, match="one number field"):
        ShardWriter(str(tmp_path / "s.tar"))


def test_the_command_line_writes_a_folder_into_shards(photos: Path, tmp_path: Path, capsys) -> None:
    pattern = str(tmp_path / "shards" / "photos-%06d.tar")
    assert main(["encode", str(photos), "-r", "-q", "40", "--shards", pattern, "--shard-files", "3"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"vaecodec: error: {photos / 'trip' / 'broken.png'}: not a readable image")
    assert err[-1] == f"vaecodec: 4 files in 2 shards: {tmp_path}/shards/photos-{{000000..000001}}.tar"
    stored = {**members(pattern % 0), **members(pattern % 1)}
    assert sorted(stored) == ["astronaut.vae", "camera.vae", "trip/cat.vae", "trip/coffee_2024.vae"]
    from vaecodec.imageio import read_image

    assert stored["trip/coffee_2024.vae"] == vaecodec.compress(read_image(photos / "trip" / "coffee.2024.jpg"), quality=40)
    # A rerun does not overwrite them.
    assert main(["encode", str(photos), "-r", "--shards", pattern]) == 1
    assert "exists (use -f to overwrite)" in capsys.readouterr().err


def test_shards_hold_the_files_in_the_inputs_order_with_jobs(photos: Path, tmp_path: Path, capsys) -> None:
    """With -j 2 the first input, much the largest, finishes last; it still comes first, the
    broken file is reported in its place, and the shards are those of -j 1."""
    Image.fromarray(np.tile(data.astronaut(), (2, 2, 1))).save(photos / "big.png")  # 1024x1024
    inputs = [str(photos / name) for name in ("big.png", "camera.png", "trip/broken.png", "astronaut.png", "trip/cat.png")]
    shards = {}
    for jobs in ("1", "2"):
        pattern = str(tmp_path / f"j{jobs}" / "photos-%06d.tar")
        assert main(["encode", *inputs, "-q", "40", "--shards", pattern, "-j", jobs]) == 1
        assert capsys.readouterr().err.startswith(f"vaecodec: error: {inputs[2]}: not a readable image")
        with tarfile.open(pattern % 0) as tar:
            shards[jobs] = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    assert [name for name, _ in shards["2"]] == ["big.vae", "camera.vae", "astronaut.vae", "cat.vae"]
    assert shards["2"] == shards["1"]


@needs_torch
def test_shards_stream_back_through_dataloader_workers(photos: Path, tmp_path: Path, codec: vaecodec.Codec) -> None:
    pytest.importorskip("webdataset", reason='reading shards needs webdataset: pip install "vaecodec[shards]"')
    from torch.utils.data import DataLoader

    from vaecodec.shards import dataset

    pattern = str(tmp_path / "photos-%02d.tar")
    assert main(["encode", str(photos), "-r", "-q", "40", "--shards", pattern, "--shard-files", "2"]) == 1
    stored = {name[: -len(".vae")]: value for i in range(2) for name, value in members(pattern % i).items()}
    loader = DataLoader(dataset(str(tmp_path / "photos-{00..01}.tar"), codec), batch_size=None, num_workers=2)
    streamed = dict(loader)
    assert sorted(streamed) == sorted(stored)
    for key, tensor in streamed.items():
        assert torch.equal(tensor, codec.decompress_tensor(stored[key]))
    assert streamed["camera"].shape == (3, 64, 64)


def test_shards_stream_back_as_arrays_without_torch(photos: Path, tmp_path: Path, codec: vaecodec.Codec) -> None:
    """``arrays=True``: the pixels of ``decompress``, a pipeline that needs no torch."""
    pytest.importorskip("webdataset", reason='reading shards needs webdataset: pip install "vaecodec[shards]"')
    from vaecodec.shards import dataset

    pattern = str(tmp_path / "photos-%02d.tar")
    assert main(["encode", str(photos), "-r", "-q", "40", "--shards", pattern]) == 1
    stored = {name[: -len(".vae")]: value for name, value in members(pattern % 0).items()}
    streamed = dict(dataset(str(tmp_path / "photos-00.tar"), codec, arrays=True))
    assert sorted(streamed) == sorted(stored)
    for key, pixels in streamed.items():
        assert np.array_equal(pixels, np.asarray(codec.decompress(stored[key])))


def test_a_sample_that_does_not_decode_is_skipped_with_a_warning(tmp_path: Path, codec: vaecodec.Codec) -> None:
    pytest.importorskip("webdataset", reason='reading shards needs webdataset: pip install "vaecodec[shards]"')
    from vaecodec.shards import dataset

    good = codec.compress(np.asarray(data.astronaut()[:32, :48]), quality=20)
    [shard] = write_shards([("good", good), ("cut", good[:-9])], str(tmp_path / "x-%d.tar"))
    with pytest.warns(RuntimeWarning, match=r"skipped .*x-0\.tar:cut: "):
        samples = list(dataset(shard, codec))
    assert [key for key, _ in samples] == ["good"]
