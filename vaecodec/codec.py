"""Images to .vae bytes and back: the transforms, the latent coder and the format put together.

``Codec`` loads a set of weights once: their bundle (``vaecodec.model.bundle``), the latent coder
that reads it (``vaecodec.latent``, numpy) and the float transforms on an engine
(``vaecodec.engine``: OpenVINO or ONNX Runtime on the CPU by default, torch for a GPU), which it
reaches through the engine's ``Transforms`` alone. ``get_codec`` shares one codec per process for
equal arguments: ``vaecodec.compress``/``decompress``, the Pillow plugin and unpickled codecs use it.

torch is needed only by what needs gradients or tensors: ``effort`` above 1 (which borrows the
torch engine for its search), the torch engine, and ``compress_tensor``/``decompress_tensor``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from vaecodec import ratecontrol
from vaecodec.effort import DEFAULT_EFFORT, Schedule, schedule, size_problem
from vaecodec.engine import open_transforms
from vaecodec.engine.tiles import Transforms, latent_size
from vaecodec.errors import VaecodecError
from vaecodec.extras import TORCH, needs_extra
from vaecodec.format.container import DEFAULT_QUALITY, VaeFile, dimension_problem, parse
from vaecodec.imageio import ImageLike, decode_alpha, encode_alpha, prepare
from vaecodec.latent.hyperprior import HyperpriorCoder, PreparedLatent
from vaecodec.latent.kinds import coder_for
from vaecodec.metrics import psnr as psnr_of
from vaecodec.model.bundle import Bundle, is_bundle, load_bundle, packaged_bundle_path, tune_bundle_path
from vaecodec.model.rate_levels import level_units, quality_units
from vaecodec.tunes import DEFAULT_TUNE, check_tune, tune_of

if TYPE_CHECKING:
    import torch

    from vaecodec.latent.sga import Progress
    from vaecodec.model.weights import TrainedModel


def _bits_to_bytes(bpp: float, pixels: int) -> int:
    if not isinstance(bpp, (int, float)) or not bpp > 0:
        raise VaecodecError(f"bpp must be a positive number, got {bpp!r}")
    return int(bpp * pixels / 8)


@dataclass
class AnalysedImage:
    """An image after the analysis transforms: everything about its coding but the quality."""

    mode: str
    width: int
    height: int
    latent: PreparedLatent
    alpha_plane: bytes  # PNG of the alpha channel, or empty
    icc_profile: bytes
    pixels: np.ndarray  # the colour that was coded, 3xHxW uint8 (for rate control and effort)


def get_codec(weights: str | Path | None = None, device: str = "cpu", precision: str = "auto", *,
              tune: str = DEFAULT_TUNE, engine: str = "auto") -> Codec:
    """A codec for these weights, device, precision, tune and engine, loaded once per process.

    Equal arguments spelled differently (``"cpu"`` or ``torch.device("cpu")``, str or Path) share
    one codec, so unpickled codecs reuse the one the process already has.
    """
    return _shared(None if weights is None else Path(weights), str(device), precision, check_tune(tune), engine)


@lru_cache(maxsize=8)
def _shared(weights: Path | None, device: str, precision: str, tune: str, engine: str) -> Codec:
    return Codec(weights, device, precision, tune=tune, engine=engine)


def _load(weights: str | Path | TrainedModel | None, tune: str) -> tuple[Bundle, TrainedModel | None]:
    """The bundle of the weights a codec is made with, and the torch weights when given as such
    (a ``.pt`` file, or loaded): those run on the torch engine unless their bundle has graphs."""
    if weights is None:
        return load_bundle(tune_bundle_path(tune)), None
    if not isinstance(weights, (str, Path)):  # loaded torch weights (a TrainedModel)
        return weights.bundle, weights
    path = Path(weights)
    if is_bundle(path):
        return load_bundle(path), None
    try:
        with zipfile.ZipFile(path):  # torch's files are zip archives too
            pass
    except OSError as exc:
        raise VaecodecError(f"cannot read weights {path}: {exc.strerror or exc}") from None
    except zipfile.BadZipFile:
        raise VaecodecError(f"{path}: not a vaecodec weights file") from None
    with needs_extra(TORCH.needed_by(f"weights in a torch file ({path.name})")):
        from vaecodec.model.weights import load_weights
    trained = load_weights(path)
    return trained.bundle, trained


class _Loaded:
    """One set of weights made ready to code: its bundle, its latent coder, its transforms."""

    def __init__(self, bundle: Bundle, transforms: Transforms) -> None:
        self.bundle = bundle
        self.coder: HyperpriorCoder = coder_for(bundle)
        self.transforms = transforms
        self.weights_id = bundle.weights_id

    def level_units(self, quality: int) -> int:
        """The rate level of a header quality for these weights (``vaecodec.model.rate_levels``)."""
        config = self.bundle.config
        return level_units(quality, len(config.lambdas), config.lowest_level_hundredths)


class Codec:
    """A loaded model that compresses images to .vae bytes and decompresses them.

    ``weights``: a weights bundle (``.npz``), a torch weights file (``.pt``, the ``torch`` extra) or
    loaded torch weights; by default the packaged weights of ``tune`` ("psnr", the default, or
    "ssim": weights trained for MS-SSIM; ``vaecodec.tunes``). ``engine``: "auto" (on the CPU
    OpenVINO where it is installed, else ONNX Runtime, or torch for bf16; torch for another device
    or weights without graphs), "onnxruntime", "openvino" or "torch". ``device``: where the
    networks run ("cpu", "cuda": the torch engine); entropy coding always runs on the CPU.
    ``precision``: of the float transforms, "fp32", "bf16" (OpenVINO and torch, where native), or
    "auto" (bf16 where native, except on ONNX Runtime). Files decode with any engine and precision whatever the ones they were made with;
    files of other shipped weights (either tune, earlier releases) decode with any codec.
    """

    # -- pickling: a codec travels as where its weights come from, not as its networks ----------

    def __getstate__(self) -> dict[str, object]:
        """A few bytes, so a Dataset holding a codec goes to DataLoader workers cheaply."""
        if not isinstance(self._weights_source, (str, Path, type(None))):
            raise VaecodecError("a Codec made from a loaded TrainedModel cannot be pickled; make it from a weights file")
        return {"weights": self._weights_source, "device": self.device, "weights_id": self.weights_id,
                "precision": self._precision_request, "tune": self.tune, "engine": self._engine_request}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Share the process's codec for these weights (``get_codec``): one load each."""
        shared = get_codec(state["weights"], state["device"], state.get("precision", "auto"),
                           tune=state.get("tune", DEFAULT_TUNE), engine=state.get("engine", "auto"))
        if shared.weights_id != state["weights_id"]:
            raise VaecodecError(f"weights {state['weights'] or '(shipped)'} changed since this codec was pickled")
        self.__dict__.update(shared.__dict__)

    def __init__(self, weights: str | Path | TrainedModel | None = None, device: str = "cpu",
                 precision: str = "auto", *, tune: str = DEFAULT_TUNE, engine: str = "auto") -> None:
        check_tune(tune)
        self.device = str(device)
        self._weights_source = weights  # what __getstate__ sends instead of the networks
        self._precision_request, self._engine_request = precision, engine
        bundle, trained = _load(weights, tune)
        transforms = open_transforms(bundle, engine, self.device, precision, trained)
        self._main = _Loaded(bundle, transforms)
        self._others: dict[bytes, _Loaded] = {}  # other packaged weights, loaded for files that name them
        self._search: Any = None  # the engine the effort searches with, borrowed on first use
        self.weights_id = bundle.weights_id
        self.metadata = bundle.metadata
        self.tune = tune_of(bundle.config.distortion)
        self.engine = transforms.engine
        self.precision = transforms.precision

    # -- public API ---------------------------------------------------------------------------

    def compress(
        self,
        image: ImageLike,
        quality: float | None = None,
        *,
        size: int | None = None,
        bpp: float | None = None,
        psnr: float | None = None,
        effort: int = DEFAULT_EFFORT,
        progress: Progress | None = None,
    ) -> bytes:
        """Encode a PIL image, a uint8 array (HxW, HxWx3, HxWx4) or a CxHxW float tensor in [0, 1].

        Give at most one of: ``quality`` (0-100, default 75); ``size``, the largest file in bytes
        (the highest quality that fits); ``bpp``, the same as a size in bits per pixel; ``psnr``,
        the lowest quality whose decoded image reaches this many dB. See ``vaecodec.imageio`` for
        what is kept of each image mode (alpha, ICC profiles, ...).

        ``effort`` (1-9, default 1) spends encode time for a smaller file at the same quality: above 1
        the latent is optimised for this image (``vaecodec.effort``); the file decodes as any other.
        With a target, the quality is searched plainly and then refined (``vaecodec.ratecontrol``).
        ``progress``, if given, is called with (done, in all) after each step or pass of the optimisation.
        """
        targets = {"quality": quality, "size": size, "bpp": bpp, "psnr": psnr}
        given = [name for name, value in targets.items() if value is not None]
        if len(given) > 1:
            raise VaecodecError(f"give one of quality, size, bpp and psnr, not {' and '.join(given)}")
        units = quality_units(DEFAULT_QUALITY if quality is None else quality)
        optimisation = schedule(effort)
        analysed = self.analyse(image)
        problem = size_problem(effort, analysed.width, analysed.height)
        if problem is not None:
            raise VaecodecError(problem)

        def encode(units: int) -> bytes:
            return self.encode(analysed, units).to_bytes()

        def refine(units: int) -> bytes:
            return self.encode(self._refined(analysed, units, optimisation, progress), units).to_bytes()

        refined = refine if optimisation.passes_back else None

        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
                raise VaecodecError(f"size must be a positive number of bytes, got {size!r}")
            return ratecontrol.fit_size(encode, size, refined)
        if bpp is not None:
            return ratecontrol.fit_size(encode, _bits_to_bytes(bpp, analysed.width * analysed.height), refined)
        if psnr is not None:
            if not isinstance(psnr, (int, float)) or not 0 < psnr < 100:
                raise VaecodecError(f"psnr must be a number of dB between 0 and 100, got {psnr!r}")
            reference = analysed.pixels.transpose(1, 2, 0)
            return ratecontrol.fit_psnr(encode, lambda data: psnr_of(reference, self.pixels(parse(data))), psnr,
                                        refined)
        return (refined or encode)(units)

    def decompress(self, data: bytes) -> Image.Image:
        """Decode .vae bytes to a PIL image of the original's mode (RGB, L, RGBA or LA).

        The original's ICC profile, if it had one, is in ``image.info["icc_profile"]``.
        """
        file = parse(data)
        alpha = decode_alpha(file.alpha_plane, file.width, file.height) if file.alpha_plane else None
        image = Image.fromarray(self.pixels(file), "RGB")
        if file.mode.startswith("L"):
            image = image.convert("L")
        if alpha is not None:
            image.putalpha(alpha)
        if file.icc_profile:
            image.info["icc_profile"] = file.icc_profile
        return image

    def compress_tensor(self, x: torch.Tensor, quality: float = DEFAULT_QUALITY,
                        effort: int = DEFAULT_EFFORT) -> bytes | list[bytes]:
        """Encode a CxHxW tensor (one file) or an NxCxHxW batch (a list of files); C is 1 or 3."""
        if x.dim() == 4:
            return [self.compress_tensor(item, quality, effort) for item in x]
        return self.compress(x, quality, effort=effort)

    def decompress_tensor(self, data: bytes | list[bytes]) -> torch.Tensor:
        """Decode to a float tensor in [0, 1] on the codec's device: 3xHxW, or Nx3xHxW for a list
        (the ``torch`` extra). The values are the decoded 8-bit pixels over 255, exactly what
        :meth:`decompress` gives."""
        with needs_extra(TORCH.needed_by("decompress_tensor")):
            import torch
        if isinstance(data, (list, tuple)):
            return torch.stack([self.decompress_tensor(item) for item in data])
        pixels = torch.from_numpy(self.pixels(parse(data))).permute(2, 0, 1)
        return pixels.to(self.device).float().div_(255)

    # -- the steps of coding, for the inspection and generative tools ---------------------------

    def _loaded(self, weights_id: bytes) -> _Loaded:
        """The loaded weights, or the other packaged ones a file names (a tune's, an earlier release's)."""
        if weights_id == self.weights_id:
            return self._main
        if weights_id not in self._others:
            path = packaged_bundle_path(weights_id)
            if path is None:
                raise VaecodecError(
                    f"file was made with weights {weights_id.hex()}, but the loaded weights are "
                    f"{self.weights_id.hex()}; decode it with the vaecodec version that wrote it"
                )
            bundle = load_bundle(path)
            transforms = open_transforms(bundle, self._engine_request, self.device, self._precision_request)
            self._others[weights_id] = _Loaded(bundle, transforms)
        return self._others[weights_id]

    def _file_weights(self, file: VaeFile) -> _Loaded:
        """The weights a file names, if its format version is the one their coder writes."""
        loaded = self._loaded(file.weights_id)
        if file.version != loaded.coder.format_version:
            raise VaecodecError(f"file is .vae version {file.version}, but its weights write version "
                                f"{loaded.coder.format_version}: the file is damaged")
        return loaded

    def analyse(self, image: ImageLike) -> AnalysedImage:
        """The quality-independent half of encoding (transforms, hyper-latent, hyper stream)."""
        prepared = prepare(image)
        pixels = prepared.pixels
        height, width = pixels.shape[-2:]
        problem = dimension_problem(width, height)
        if problem is not None:
            raise VaecodecError(problem)
        y, z = self._main.transforms.analyse(pixels)
        alpha = encode_alpha(prepared.alpha) if prepared.alpha is not None else b""
        return AnalysedImage(prepared.mode, width, height, self._main.coder.prepare(y, z), alpha,
                             prepared.icc_profile, pixels)

    def _refined(self, analysed: AnalysedImage, quality: int, optimisation: Schedule,
                 progress: Progress | None) -> AnalysedImage:
        """The image with its latent's symbols at a header quality chosen by the effort's search
        (``vaecodec.latent.sga``), on the torch engine (this codec's, or one borrowed for it)."""
        if self._search is None:
            self._search = (self._main.transforms if hasattr(self._main.transforms, "refine") else
                            open_transforms(self._main.bundle, "torch", self.device, self._precision_request,
                                            user="--effort above 1"))
        units = self._main.level_units(quality)
        coder = self._main.coder
        gained = coder.gained(analysed.latent, units)
        symbols = self._search.refine(analysed.pixels, gained, units, optimisation, progress)
        return replace(analysed, latent=coder.with_symbols(analysed.latent, gained, symbols))

    def encode(self, analysed: AnalysedImage, quality: int) -> VaeFile:
        """The quality-dependent half of encoding: the latent stream at a header quality, and the file."""
        latent_stream = self._main.coder.encode(analysed.latent, self._main.level_units(quality))
        return VaeFile(analysed.mode, analysed.width, analysed.height, quality, self.weights_id,
                       analysed.latent.hyper_stream, latent_stream, analysed.alpha_plane, analysed.icc_profile,
                       self._main.coder.format_version)

    def pixels(self, file: VaeFile) -> np.ndarray:
        """The decoded colour of a file as HxWx3 uint8 (RGB, grayscale as three equal channels)."""
        return self.synthesise(self.decoded_latent(file), file.width, file.height, file.weights_id)

    def decoded_latent(self, file: VaeFile) -> np.ndarray:
        """A file's decoded latent y_hat (1, M, h, w), which :meth:`synthesise` turns into its
        pixels (``vaecodec.generative`` blends two files' latents in between)."""
        loaded = self._file_weights(file)
        return loaded.coder.decode(file.hyper_stream, file.latent_stream, latent_size(file.width, file.height),
                                   loaded.level_units(file.quality_units))

    def symbol_information(self, file: VaeFile) -> dict[str, np.ndarray]:
        """A file's symbols with the bits each cost, from the tables it was coded with (the latent
        coder's ``symbol_information``; ``vaecodec.inspection`` draws them)."""
        loaded = self._file_weights(file)
        return loaded.coder.symbol_information(file.hyper_stream, file.latent_stream,
                                               latent_size(file.width, file.height),
                                               loaded.level_units(file.quality_units))

    def sampled_latent(self, width: int, height: int, quality: int, rng: np.random.Generator) -> np.ndarray:
        """A latent for a width x height image drawn from the loaded weights' prior at a header
        quality (the latent coder's ``sample``; ``vaecodec.generative``)."""
        return self._main.coder.sample(latent_size(width, height), self._main.level_units(quality), rng)

    def synthesise(self, y_hat: np.ndarray, width: int, height: int, weights_id: bytes | None = None) -> np.ndarray:
        """The HxWx3 uint8 colour of a latent, by the synthesis transform of the weights
        ``weights_id`` (default: the loaded ones), exactly as a file decodes."""
        return self._loaded(weights_id or self.weights_id).transforms.synthesise(y_hat, width, height)
