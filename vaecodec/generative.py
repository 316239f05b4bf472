"""The generative side of the VAE: images drawn from its prior, and blends of two images' latents.

``sample`` draws what a file would hold without an image behind it: the hyper-latent from its
learned factorized prior, then every latent symbol from the Gaussian that the hyper-synthesis
predicts for it, both under the weights' frozen integer tables at a quality's rate level, and
decodes the latent as a file would be (``HyperpriorCoder.sample``). Drawing with a seeded numpy
generator from integer tables gives a seed the same latent wherever it runs, and so the same image
(on another machine, within the float rounding of the transforms, as for any file).

``interpolate`` codes two images at one quality and synthesises linear blends of their decoded
latents: its end frames are the two decoded files, pixel for pixel.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from vaecodec.codec import Codec, get_codec
from vaecodec.errors import VaecodecError
from vaecodec.format.container import DEFAULT_QUALITY
from vaecodec.imageio import ImageLike
from vaecodec.model.rate_levels import quality_units

MAX_SAMPLE_SIDE = 4096  # pixels a side: a larger sample is refused, a bound on the work one call may ask for
MAX_STEPS = 64  # frames of an interpolation


def sample(width: int, height: int, quality: float = DEFAULT_QUALITY, seed: int = 0, *,
           codec: Codec | None = None) -> Image.Image:
    """An RGB image of width x height drawn from the model at ``quality`` (0-100; the rate level
    sets how fine the drawn latent is), the same for the same seed."""
    for name, side in (("width", width), ("height", height)):
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or not 0 < side <= MAX_SAMPLE_SIDE:
            raise VaecodecError(f"sample {name} must be a whole number from 1 to {MAX_SAMPLE_SIDE}, got {side!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise VaecodecError(f"seed must be a whole number from 0 up, got {seed!r}")
    units = quality_units(quality)
    codec = codec or get_codec()
    latent = codec.sampled_latent(int(width), int(height), units, np.random.default_rng(int(seed)))
    return Image.fromarray(codec.synthesise(latent, int(width), int(height)), "RGB")


def interpolate(a: ImageLike, b: ImageLike, quality: float = DEFAULT_QUALITY, steps: int = 8, *,
                codec: Codec | None = None) -> list[Image.Image]:
    """``steps`` RGB frames from image ``a`` to image ``b`` (of one size): the synthesis of
    (1 - t) * latent(a) + t * latent(b) for t evenly from 0 to 1, the latents decoded from both
    images coded at ``quality``. The first and last frames are ``decompress(compress(a, quality))``
    and the same of ``b`` (their colour; alpha is not blended)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 2 <= steps <= MAX_STEPS:
        raise VaecodecError(f"steps must be a whole number from 2 to {MAX_STEPS}, got {steps!r}")
    units = quality_units(quality)
    codec = codec or get_codec()
    first, last = codec.analyse(a), codec.analyse(b)
    if (first.width, first.height) != (last.width, last.height):
        raise VaecodecError(f"the images differ in size ({first.width}x{first.height} and {last.width}x{last.height}); "
                            "interpolation needs two images of one size")
    start, end = (codec.decoded_latent(codec.encode(analysed, units)) for analysed in (first, last))
    frames = []
    for t in np.linspace(0.0, 1.0, int(steps)):
        blend = start * np.float32(1 - t) + end * np.float32(t)  # exact at both ends: x * 1 + y * 0 == x
        frames.append(Image.fromarray(codec.synthesise(blend, first.width, first.height), "RGB"))
    return frames


def film_strip(frames: list[Image.Image], gap: int = 4, background: tuple[int, int, int] = (24, 24, 24)) -> Image.Image:
    """Frames of one size side by side, ``gap`` pixels of ``background`` around each."""
    width, height = frames[0].size
    strip = Image.new("RGB", (len(frames) * (width + gap) + gap, height + 2 * gap), background)
    for index, frame in enumerate(frames):
        strip.paste(frame.convert("RGB"), (gap + index * (width + gap), gap))
    return strip
