"""The one exception type that vaecodec raises for bad input, files and options."""


class VaecodecError(ValueError):
    """An image, a .vae file or an option that vaecodec cannot use; the message says why."""


class UsageError(VaecodecError):
    """Command-line arguments that do not parse (exit status 2, as argparse's own)."""


class MissingExtra(VaecodecError, ImportError):
    """An optional dependency that is not installed (also an ImportError, as Python's own would
    be); the message says which extra installs it, e.g. ``pip install "vaecodec[ray]"``."""
