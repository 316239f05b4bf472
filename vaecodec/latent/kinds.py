"""Which latent coder codes a set of weights: their model kind, as their file or bundle declares it.

Torch-free, so that the coding runtime picks a coder from a bundle; the torch weights' loader
(``vaecodec.model.weights.KINDS``) pairs the same coders with their network class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vaecodec.errors import VaecodecError
from vaecodec.latent.context import ContextCoder
from vaecodec.latent.hyperprior import HyperpriorCoder

if TYPE_CHECKING:
    from vaecodec.model.bundle import Bundle

CODERS: dict[str, type[HyperpriorCoder]] = {HyperpriorCoder.kind: HyperpriorCoder, ContextCoder.kind: ContextCoder}


def coder_class(kind: str) -> type[HyperpriorCoder]:
    """The coder of a model kind, or a clean error for a kind this version does not know."""
    if kind not in CODERS:
        raise VaecodecError(f"weights of model kind {kind!r}, which this vaecodec does not know; upgrade vaecodec")
    return CODERS[kind]


def coder_for(bundle: Bundle) -> HyperpriorCoder:
    """The latent coder of a bundle's weights."""
    return coder_class(bundle.kind)(bundle)
