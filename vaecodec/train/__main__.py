"""``python -m vaecodec.train``: the same as ``vaecodec train``."""

from vaecodec.cli.main import main

raise SystemExit(main(["train", *__import__("sys").argv[1:]]))
