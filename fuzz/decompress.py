"""Fuzz target: ``vaecodec.decompress(bytes)``, the decoder of .vae files.

Contract: the bytes decode to an image of the size and mode their header says, or raise
``VaecodecError``; nothing else (common.py). Each input is decoded with the shipped weights
(``vaecodec.decompress``: version 1 files) and with small weights of kind "channel-context"
(``common.context_bundle``: version 2 files, the integer context networks); a file reaches the
streams only under the weights its header names, so for the other codec it ends at that check.

    python fuzz/decompress.py fuzz/out/decompress/corpus fuzz/corpus/decompress \\
        -max_total_time=60 -rss_limit_mb=2048 -timeout=10
    python fuzz/decompress.py --replay fuzz/corpus/decompress     # once over files, no atheris
"""

import common

with common.instrumented():
    import vaecodec
    import vaecodec.api
    import vaecodec.codec
    import vaecodec.entropy.coder
    import vaecodec.entropy.tables
    import vaecodec.format.container
    import vaecodec.imageio
    import vaecodec.latent.context
    import vaecodec.latent.hyperprior
    import vaecodec.latent.kinds
    import vaecodec.model.fixed_point
    import vaecodec.model.rate_levels
    import vaecodec.model.tiling
    from vaecodec.errors import VaecodecError
    from vaecodec.format.container import parse

CONTEXT = common.context_bundle()
CODECS = [vaecodec.decompress] + ([vaecodec.Codec(CONTEXT).decompress] if CONTEXT else [])


def decode(decompress, data: bytes) -> str:
    image = decompress(data)
    header = parse(data)
    if (image.size, image.mode) != ((header.width, header.height), header.mode):
        raise common.ContractViolation(f"decoded a {image.size} {image.mode} image from a header of "
                                       f"{header.width}x{header.height} {header.mode}")
    return f"decoded version {header.version}"


def test_one_input(data: bytes) -> str:
    outcomes = [common.expect(lambda: decode(decompress, data), (VaecodecError,)) for decompress in CODECS]
    return min(outcomes, key=lambda outcome: not outcome.startswith("decoded"))  # a decode, if either did


if __name__ == "__main__":
    common.run(test_one_input, common.vae_mutator)
