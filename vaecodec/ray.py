"""Ray Data stages: compress and decompress the rows of a dataset on a cluster.

:class:`Encoder` and :class:`Decoder` are callable classes for ``Dataset.map_batches``: Ray runs
each in a pool of actors, and an actor builds its stage, so loads the model, once. A batch is a
dict of numpy columns (``batch_format="numpy"``, Ray's default for these):

- ``Encoder`` takes images from a column of pixel arrays (``image``, as ``read_images`` gives),
  of file contents (``bytes``, as ``read_binary_files`` gives) or of file paths (``path``), and
  gives ``vae`` (the .vae bytes), ``width``, ``height``, ``size`` (bytes) and ``bpp``.
- ``Decoder`` takes ``vae`` and gives ``image``: the pixels of ``vaecodec.decompress`` as HxWxC
  uint8 arrays (C = 3 for colour, 1 for grayscale, one more for alpha).

A row that cannot be coded does not fail its batch: its ``error`` column holds the one-line reason
(``photos/x.png: not a readable image (unknown format)``), its outputs are empty (``vae`` None,
sizes 0, ``bpp`` NaN, ``image`` 0x0x3), and the other rows complete; ``error`` is None on rows
that succeeded, and a row that arrives with an error is passed on with it. Only failures of the
images and files are caught so: anything else is a fault of the job, which Ray reports and retries
as usual. The columns keep one type whatever the batch holds (``vae`` binary, ``error`` string,
``image`` always 3-d, so that Ray stores them as tensors), so Parquet files of batches with and
without failures read back as one table.

:func:`compress` and :func:`decompress` apply the stages with an actor pool, on GPUs with
``num_gpus`` (each actor then runs the networks on its GPU, ``device="cuda"``; the entropy
coding stays on the actor's CPU). Needs ``pip install "vaecodec[ray]"``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from vaecodec.errors import VaecodecError
from vaecodec.extras import RAY, needs_extra

with needs_extra(RAY):
    import pyarrow as pa
    import ray.data

if TYPE_CHECKING:
    from vaecodec.codec import Codec

Batch = dict[str, Any]  # numpy arrays in; numpy or pyarrow arrays out (pyarrow where a type must hold)

# The columns an Encoder takes its images from, in the order it looks for them.
IMAGE_COLUMNS = ("image", "bytes", "path")
# Failures of one row, not of the job: the codec's own, files that cannot be read, images too big.
_ROW_ERRORS = (VaecodecError, OSError, MemoryError)
# A failed row's image: None would make Ray pickle the whole column instead of storing tensors.
_NO_IMAGE = np.zeros((0, 0, 3), dtype=np.uint8)


def _objects(values: Sequence[Any]) -> np.ndarray:
    """A 1-d object array of ``values`` (numpy would make a 2-d array of equal-shaped images)."""
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


class _Stage:
    """What both stages share: the codec, loaded once per actor, and the row loop with its errors."""

    def __init__(self, column: str | None, weights: str | Path | None, device: str, precision: str) -> None:
        from vaecodec.codec import get_codec

        self.column = column
        self.codec: Codec = get_codec(weights, device, precision)

    def _rows(self, batch: Batch, column: str, work: Callable[[Any, str], dict[str, Any]],
              empty: dict[str, Any]) -> tuple[dict[str, list[Any]], list[str | None]]:
        """``work(value, name)`` on each row's ``column``, as columns; a failed row gets ``empty``
        and its reason. ``name`` is the row's path where it has one, for the messages."""
        count = len(batch[column])
        paths = batch.get("path")
        earlier = batch.get("error")
        columns: dict[str, list[Any]] = {name: [] for name in empty}
        errors: list[str | None] = []
        for index in range(count):
            name = str(paths[index]) if paths is not None else ""
            error = earlier[index] if earlier is not None else None
            result = empty
            if not error:
                error = None
                try:
                    result = work(batch[column][index], name)
                except _ROW_ERRORS as exc:
                    text = str(exc) or type(exc).__name__
                    error = text if not name or text.startswith(name) else f"{name}: {text}"
            for key, value in result.items():
                columns[key].append(value)
            errors.append(error)
        return columns, errors


class Encoder(_Stage):
    """``map_batches`` stage: images to .vae bytes, with their sizes and bits per pixel.

    ``column``: where the images are (default: the first of ``image``, ``bytes`` and ``path`` that
    the batch has). A column of pixel arrays (uint8 or uint16, HxW, HxWx3 or HxWx4) is coded as
    ``vaecodec.compress`` codes the array; file contents and paths are read as the command line
    reads files (EXIF orientation, ICC profile, alpha), so the bytes equal ``vaecodec encode``'s.
    ``quality``, ``size``, ``bpp``, ``psnr``: as for ``vaecodec.compress``. The image column is
    replaced by the outputs unless ``keep_images``; a ``path`` column always stays. ``weights``,
    ``device`` and ``precision``: as for ``vaecodec.Codec``.
    """

    def __init__(self, quality: float | None = None, *, size: int | None = None, bpp: float | None = None,
                 psnr: float | None = None, column: str | None = None, keep_images: bool = False,
                 weights: str | Path | None = None, device: str = "cpu", precision: str = "auto") -> None:
        given = [name for name, value in {"quality": quality, "size": size, "bpp": bpp, "psnr": psnr}.items()
                 if value is not None]
        if len(given) > 1:  # here, once, rather than as every row's error
            raise VaecodecError(f"give one of quality, size, bpp and psnr, not {' and '.join(given)}")
        super().__init__(column, weights, device, precision)
        self.targets: dict[str, Any] = {"quality": quality, "size": size, "bpp": bpp, "psnr": psnr}
        self.keep_images = keep_images

    def __call__(self, batch: Batch) -> Batch:
        column = self.column or next((name for name in IMAGE_COLUMNS if name in batch), None)
        if column is None or column not in batch:
            wanted = self.column or " or ".join(IMAGE_COLUMNS)
            raise VaecodecError(f"the batch has no {wanted} column (it has {', '.join(batch) or 'none'})")
        empty = {"vae": None, "width": 0, "height": 0, "size": 0, "bpp": float("nan")}
        columns, errors = self._rows(batch, column, self._encode, empty)
        out = {name: values for name, values in batch.items() if name != "error"}
        if column != "path" and not self.keep_images:
            del out[column]
        out.update({"vae": pa.array(columns["vae"], type=pa.binary()), "width": np.array(columns["width"], dtype=np.int64),
                    "height": np.array(columns["height"], dtype=np.int64),
                    "size": np.array(columns["size"], dtype=np.int64),
                    "bpp": np.array(columns["bpp"], dtype=np.float64), "error": pa.array(errors, type=pa.string())})
        return out

    def _encode(self, value: Any, name: str) -> dict[str, Any]:
        image = self._image(value, name)
        data = self.codec.compress(image, **self.targets)
        width, height = (image.shape[1], image.shape[0]) if isinstance(image, np.ndarray) else image.size
        return {"vae": data, "width": width, "height": height, "size": len(data), "bpp": 8 * len(data) / (width * height)}

    @staticmethod
    def _image(value: Any, name: str) -> Any:
        """A row's image: its pixel array, or the image its file contents or path hold."""
        from vaecodec.imageio import read_image

        if isinstance(value, np.ndarray) and value.dtype != object:
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            stream = io.BytesIO(bytes(value))
            stream.name = name or "image"  # read_image names the input in its messages
            return read_image(stream)
        if isinstance(value, (str, Path)):
            return read_image(Path(value))
        raise VaecodecError(f"cannot compress a {type(value).__name__}: give pixel arrays, file contents or paths")


class Decoder(_Stage):
    """``map_batches`` stage: .vae bytes (``column``, default ``vae``) to decoded pixel arrays.

    Gives ``image``: HxWxC uint8 arrays, the pixels of ``vaecodec.decompress(data)`` (C = 3, or 1
    for grayscale originals, and one more for alpha); a failed row's is empty, 0x0x3. The .vae
    column is replaced unless ``keep_vae``.
    """

    def __init__(self, *, column: str = "vae", keep_vae: bool = False, weights: str | Path | None = None,
                 device: str = "cpu", precision: str = "auto") -> None:
        super().__init__(column, weights, device, precision)
        self.keep_vae = keep_vae

    def __call__(self, batch: Batch) -> Batch:
        assert self.column is not None
        if self.column not in batch:
            raise VaecodecError(f"the batch has no {self.column} column (it has {', '.join(batch) or 'none'})")
        columns, errors = self._rows(batch, self.column, self._decode, {"image": _NO_IMAGE})
        out = {name: values for name, values in batch.items() if name != "error"}
        if not self.keep_vae:
            del out[self.column]
        out.update({"image": _objects(columns["image"]), "error": pa.array(errors, type=pa.string())})
        return out

    def _decode(self, value: Any, name: str) -> dict[str, Any]:
        if value is None:
            raise VaecodecError("no .vae data")
        pixels = np.asarray(self.codec.decompress(bytes(value)))
        return {"image": pixels if pixels.ndim == 3 else pixels[..., None]}  # one ndim: one tensor column


def _apply(dataset: ray.data.Dataset, stage: type[_Stage], options: dict[str, Any], *, actors: int | tuple[int, int],
           batch_size: int, num_cpus: float, num_gpus: float, device: str | None) -> ray.data.Dataset:
    device = device or ("cuda" if num_gpus else "cpu")
    size = {"size": actors} if isinstance(actors, int) else {"min_size": actors[0], "max_size": actors[1]}
    return dataset.map_batches(stage, fn_constructor_kwargs={**options, "device": device}, batch_size=batch_size,
                               batch_format="numpy", compute=ray.data.ActorPoolStrategy(**size),
                               num_cpus=num_cpus, num_gpus=num_gpus)


def compress(dataset: ray.data.Dataset, quality: float | None = None, *, actors: int | tuple[int, int] = 1,
             batch_size: int = 8, num_cpus: float = 1, num_gpus: float = 0, device: str | None = None,
             **options: Any) -> ray.data.Dataset:
    """``dataset`` with its images compressed by :class:`Encoder` (``options`` go to it), in
    ``actors`` actors (a number, or (fewest, most) to let Ray scale the pool), each with
    ``num_cpus`` CPUs (the codec's threads: Ray sets ``OMP_NUM_THREADS`` to it) and ``num_gpus``
    GPUs (then the networks run on CUDA, on torch)."""
    return _apply(dataset, Encoder, {"quality": quality, **options}, actors=actors, batch_size=batch_size,
                  num_cpus=num_cpus, num_gpus=num_gpus, device=device)


def decompress(dataset: ray.data.Dataset, *, actors: int | tuple[int, int] = 1, batch_size: int = 8,
               num_cpus: float = 1, num_gpus: float = 0, device: str | None = None,
               **options: Any) -> ray.data.Dataset:
    """``dataset`` with its ``vae`` column decoded by :class:`Decoder` (``options`` go to it);
    the actors as for :func:`compress`."""
    return _apply(dataset, Decoder, options, actors=actors, batch_size=batch_size, num_cpus=num_cpus,
                  num_gpus=num_gpus, device=device)
