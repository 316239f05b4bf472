"""The OpenVINO engine (the ``openvino`` extra): its files decode on ONNX Runtime, its bytes do not
depend on the thread count, and without it installed asking for it is the one-line MissingExtra."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("openvino")

import vaecodec  # noqa: E402
from vaecodec.codec import get_codec  # noqa: E402
from vaecodec.engine import openvino_engine  # noqa: E402
from vaecodec.errors import VaecodecError  # noqa: E402
from vaecodec.format.container import parse  # noqa: E402

from conftest import not_installed, psnr, samples  # noqa: E402

# 192x320: taller than one analysis strip (256 rows) and one synthesis strip (16 latent rows), so
# at 2 threads two strips run at once.
CROP = (slice(0, 320), slice(160, 352))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(samples.astronaut()[CROP])


@pytest.fixture(scope="module")
def openvino_codec() -> vaecodec.Codec:
    return get_codec(engine="openvino")


def test_files_decode_on_onnxruntime_to_the_same_symbols(openvino_codec: vaecodec.Codec, astronaut: np.ndarray) -> None:
    runtime = get_codec(engine="onnxruntime")
    data = openvino_codec.compress(astronaut, quality=60)
    file = parse(data)
    assert np.array_equal(openvino_codec.symbol_information(file)["symbols"],
                          runtime.symbol_information(file)["symbols"])
    on_openvino, on_runtime = np.asarray(openvino_codec.decompress(data)), np.asarray(runtime.decompress(data))
    assert abs(psnr(astronaut, on_openvino) - psnr(astronaut, on_runtime)) < 0.1
    assert psnr(on_runtime, on_openvino) > 40


def test_precision() -> None:
    """auto is bf16 exactly where the CPU has it; fp32 when asked; anything else is refused."""
    assert get_codec(engine="openvino", precision="fp32").precision == "fp32"
    assert get_codec(engine="openvino").precision == ("bf16" if openvino_engine.native_bf16() else "fp32")
    with pytest.raises(VaecodecError, match="runs on the CPU"):
        vaecodec.Codec(engine="openvino", device="cuda")


def test_bf16_without_native_bf16_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openvino_engine, "native_bf16", lambda: False)
    with pytest.raises(VaecodecError, match=r"^bf16 is not native on this cpu device .*use --precision fp32 or auto$"):
        vaecodec.Codec(engine="openvino", precision="bf16")
    assert vaecodec.Codec(engine="openvino").precision == "fp32"


def test_threads_at_once_each_get_their_own_result(openvino_codec: vaecodec.Codec) -> None:
    """Hooks called from several threads at once (as the strips call them) give what one at a time gives."""
    transforms = openvino_codec._main.transforms
    latents = [np.random.default_rng(seed).normal(size=(1, 144, 6 + seed, 8)).astype(np.float32) for seed in range(4)]
    alone = [transforms._synthesis(latent) for latent in latents]
    together: list[np.ndarray | None] = [None] * len(latents)
    start = threading.Barrier(len(latents))

    def work(index: int) -> None:
        start.wait()
        together[index] = transforms._synthesis(latents[index])

    workers = [threading.Thread(target=work, args=(index,)) for index in range(len(latents))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert all(np.array_equal(a, b) for a, b in zip(alone, together))


# In a fresh process with N strips at once: the file of the PNG and a digest of its decoded pixels.
WORKER = """
import hashlib, sys
import numpy as np
from PIL import Image
import vaecodec
from vaecodec.threads import set_threads
set_threads(int(sys.argv[1]))
codec = vaecodec.Codec(engine="openvino")
data = codec.compress(Image.open(sys.argv[2]), 60)
sys.stdout.write(data.hex() + " " + hashlib.sha256(np.asarray(codec.decompress(data)).tobytes()).hexdigest())
"""


def test_same_bytes_and_pixels_at_1_and_2_threads(tmp_path: Path, astronaut: np.ndarray) -> None:
    Image.fromarray(astronaut).save(tmp_path / "photo.png")
    outputs = {subprocess.run([sys.executable, "-c", WORKER, str(threads), str(tmp_path / "photo.png")],
                              capture_output=True, text=True, check=True, timeout=120).stdout
               for threads in (1, 2)}
    assert len(outputs) == 1


def test_without_openvino_installed(tmp_path: Path, photo: Image.Image) -> None:
    """An import hook refuses openvino, as an install without the extra would: auto runs on ONNX
    Runtime, and asking for the engine is one line naming the extra, from the API and the command."""
    photo.save(tmp_path / "in.png")
    script = not_installed("openvino") + textwrap.dedent("""
        import vaecodec
        from vaecodec.errors import MissingExtra
        from vaecodec.cli.main import main
        print(vaecodec.Codec().engine)
        try:
            vaecodec.Codec(engine="openvino")
        except MissingExtra as exc:
            print(exc)
        sys.exit(main(sys.argv[1:]))
    """)
    result = subprocess.run([sys.executable, "-c", script, "encode", "--engine", "openvino", str(tmp_path / "in.png")],
                            capture_output=True, text=True, timeout=120)
    missing = 'the openvino engine needs openvino: pip install "vaecodec[openvino]"'
    assert result.stdout == f"onnxruntime\n{missing}\n"
    assert (result.returncode, result.stderr) == (1, f"vaecodec: error: {missing}\n")
    assert list(tmp_path.iterdir()) == [tmp_path / "in.png"]
