"""Which floating-point precision the float networks run in: fp32, or bf16 where it is native.

bf16 halves the bytes of every activation and, on CPUs with bf16 matrix instructions (AVX512-BF16,
AMX-BF16), runs convolutions about twice as fast as fp32. Without them oneDNN emulates bf16 at a
fraction of fp32's speed, so "auto" picks bf16 only where torch reports native support, and asking
for bf16 on a device without it is an error rather than a silent slowdown.

Only the float transforms change precision. What selects coding probabilities is integer
arithmetic (``vaecodec.model.fixed_point``), so a file coded at one precision decodes at the other
to pixels that differ by rounding only.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from vaecodec.engine.tiles import check_precision
from vaecodec.errors import VaecodecError



def native_bf16(device: torch.device) -> bool:
    """Whether bf16 convolutions run natively on ``device`` (as torch and oneDNN report it)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of the float networks for a precision name on a device."""
    check_precision(precision)
    if precision == "fp32":
        return torch.float32
    native = native_bf16(device)
    if precision == "bf16" and not native:
        raise VaecodecError(f"bf16 is not native on this {device.type} device (it would run many times slower "
                            "than fp32); use --precision fp32 or auto")
    return torch.bfloat16 if native else torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> AbstractContextManager:
    """Autocast to ``dtype`` on ``device``, or nothing at fp32."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)

