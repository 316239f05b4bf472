"""The package list, found rather than written by hand (issue 38); everything else is in pyproject.toml.

Every folder under ``vaecodec/`` with an ``__init__.py`` is a package of the wheel, so a new subpackage
cannot be left out the way ``vaecodec.latent`` once was (the installed codec could not import). Two
folders of the checkout are installed under other names: ``weights/`` as ``vaecodec.weights`` and
``bench/`` as ``vaecodec.bench_config`` (their ``package-dir`` and ``package-data`` are in
pyproject.toml). pyproject.toml alone cannot say this: its ``packages.find`` only names folders by
where they lie, so it would find neither. Nothing else at the top (``bench/``, ``weights/``,
``tests/``) becomes a package of its own. tests/test_packaging.py checks the built wheel.
"""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(where=str(Path(__file__).parent), include=["vaecodec", "vaecodec.*"]),
        "vaecodec.weights",
        "vaecodec.bench_config",
    ],
)
