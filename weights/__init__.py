"""Shipped model weights (installed as the package ``vaecodec.weights``); see TRAINING.md."""
