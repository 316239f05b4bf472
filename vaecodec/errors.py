"""The one exception type that vaecodec raises for bad input, files and options."""


class VaecodecError(ValueError):
    """An image, a .vae file or an option that vaecodec cannot use; the message says why."""
