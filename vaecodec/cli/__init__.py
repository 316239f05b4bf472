"""The ``vaecodec`` command line: ``main`` parses, the other modules run the commands."""

PROG = "vaecodec"  # the name in usage lines and in every one-line message
