"""A model's shape and rate levels: stored beside its weights, so a file describes its own model.

Plain data without torch: the coding runtime reads it from a weights bundle as training writes it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Rate-distortion trade-offs of the rate levels (loss = bits/pixel + lambda * 255^2 * MSE),
# the eight MSE points of CompressAI's model zoo, spanning about 0.1 to 2 bpp.
DEFAULT_LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)
# A model's lambdas weigh its distortion (``vaecodec.tunes.DISTORTIONS``): "mse" the squared error
# on the 0-255 scale, "ms-ssim" 1 - MS-SSIM (5 scales, values in [0, 1]).
# The MS-SSIM trade-offs matching the shipped MSE levels one for one: CompressAI's MS-SSIM lambdas
# beside its MSE ones (2.40 ... 115.37 at 0.0018 ... 0.0932), and 480 at the top level (MSE 0.225),
# which a fine-tuning probe measured to keep that level's rate where the MSE model had it.
MS_SSIM_LAMBDAS = (2.40, 4.58, 8.73, 16.64, 31.73, 60.50, 115.37, 480.0)
# Downsampling of the image to the hyper-latent (the transforms' 16, the hyper-analysis' 4):
# inputs are padded to a multiple of this.
STRIDE = 64


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the network; stored beside the weights so a file describes its own model."""

    channels: int = 64
    latent_channels: int = 96
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS
    # The rate level of quality 0, in hundredths: below 0, the gains and lambdas extrapolate the
    # two lowest levels (log-linearly), reaching rates under the lowest lambda's; trained there too.
    lowest_level_hundredths: int = -150
    # Channels of the hyper networks and the hyper-latent; 0: as many as the transforms (``channels``),
    # which a model keeps when its transforms are widened (``vaecodec.model.grow``).
    hyper_channels: int = 0
    # Channel-conditional context: the channels of each group, in coding order (summing to
    # latent_channels), and the width of the groups' networks; () for none.
    context_groups: tuple[int, ...] = ()
    context_channels: int = 64
    # What the lambdas weigh (one of DISTORTIONS): the distortion the weights were trained for.
    distortion: str = "mse"

    @property
    def hyper(self) -> int:
        return self.hyper_channels or self.channels

    def group_bounds(self) -> list[tuple[int, int]]:
        """(first, end) channel of each context group."""
        ends = [sum(self.context_groups[: k + 1]) for k in range(len(self.context_groups))]
        return list(zip([0, *ends[:-1]], ends))

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.distortion == "mse":  # as the files written before the field: their ids stay reproducible
            del data["distortion"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        return cls(int(data["channels"]), int(data["latent_channels"]), tuple(float(v) for v in data["lambdas"]),
                   int(data.get("lowest_level_hundredths", 0)),  # weights older than the field start at 0
                   int(data.get("hyper_channels", 0)), tuple(int(v) for v in data.get("context_groups", ())),
                   int(data.get("context_channels", 64)), str(data.get("distortion", "mse")))
