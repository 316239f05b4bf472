"""Codecs in pipelines: batched tensors, pickling, a DataLoader with worker processes, GPU, and
the command line between pipes."""

from __future__ import annotations

import io
import pickle
import sys

import numpy as np
import pytest
torch = pytest.importorskip("torch", reason="needs the torch extra")
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import vaecodec
from vaecodec.codec import get_codec
from vaecodec.cli.main import main
from vaecodec.model.bundle import tune_bundle_path
from vaecodec.model.weights import load_weights


def crops(photo: Image.Image, count: int) -> torch.Tensor:
    """``count`` different 48x64 crops of the photo as an Nx3x48x64 batch in [0, 1]."""
    pixels = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1).float() / 255
    return torch.stack([pixels[:, 8 * i : 8 * i + 48, 16 * i : 16 * i + 64] for i in range(count)])


class VaeFiles(Dataset):
    """Compressed images decoded on access: the codec travels to the workers with the dataset."""

    def __init__(self, codec: vaecodec.Codec, files: list[bytes]) -> None:
        self.codec, self.files = codec, files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.codec.decompress_tensor(self.files[index])


def test_a_codec_pickles_to_a_few_bytes_and_shares_the_loaded_model(codec: vaecodec.Codec, photo: Image.Image) -> None:
    data = pickle.dumps(codec)
    assert len(data) < 500
    copy = pickle.loads(data)
    assert copy._main is codec._main and copy.device == codec.device  # the loaded weights, shared
    assert copy.compress(photo, quality=40) == codec.compress(photo, quality=40)


def test_a_codec_with_a_weights_file_pickles_that_file(photo: Image.Image) -> None:
    codec = vaecodec.Codec(tune_bundle_path("psnr"))
    copy = pickle.loads(pickle.dumps(codec))
    assert copy._main is get_codec(tune_bundle_path("psnr"))._main
    assert copy.compress(photo) == vaecodec.compress(photo)


def test_a_codec_made_from_loaded_weights_says_it_cannot_pickle() -> None:
    with pytest.raises(vaecodec.VaecodecError, match="weights file"):
        pickle.dumps(vaecodec.Codec(load_weights()))


def test_dataloader_workers_decode_with_the_datasets_codec(codec: vaecodec.Codec, photo: Image.Image) -> None:
    batch = crops(photo, 4)
    files = codec.compress_tensor(batch, quality=50)
    # "spawn" pickles the dataset (and its codec) to the workers, as on macOS and Windows.
    loader = DataLoader(VaeFiles(codec, files), batch_size=2, num_workers=2, multiprocessing_context="spawn")
    decoded = torch.cat(list(loader))
    assert decoded.shape == batch.shape
    assert torch.equal(decoded, codec.decompress_tensor(files))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tensors_on_the_gpu(photo: Image.Image) -> None:
    gpu = vaecodec.Codec(device="cuda")
    batch = crops(photo, 3).cuda()
    files = gpu.compress_tensor(batch, quality=50)
    decoded = gpu.decompress_tensor(files)
    assert decoded.device.type == "cuda" and decoded.shape == batch.shape
    assert (decoded - batch).abs().mean() < 0.1
    on_cpu = get_codec().decompress_tensor(files)  # the entropy coding is exact across devices
    assert (on_cpu - decoded.cpu()).abs().max() < 0.02


def test_the_command_line_streams_from_stdin_to_stdout(photo: Image.Image, monkeypatch) -> None:
    def pipe(args: list[str], data: bytes) -> bytes:
        out = io.BytesIO()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out))
        assert main(args) == 0
        return out.getvalue()

    png = io.BytesIO()
    photo.save(png, format="PNG")
    vae = pipe(["encode", "-", "-o", "-", "-q", "30"], png.getvalue())
    assert vae == vaecodec.compress(photo, quality=30)
    decoded = Image.open(io.BytesIO(pipe(["decode", "-", "-o", "-"], vae)))
    assert decoded.format == "PNG"
    assert np.array_equal(np.asarray(decoded), np.asarray(vaecodec.decompress(vae)))
