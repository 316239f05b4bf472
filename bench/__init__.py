"""The bench's default configuration and published anchors (installed as ``vaecodec.bench_config``)."""
