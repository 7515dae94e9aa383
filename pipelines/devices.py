"""Pick the torch device and dtype: CUDA (bf16 or fp16), Apple MPS (fp16), else CPU (fp32)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

DeviceName = Literal["auto", "cuda", "mps", "cpu"]
DtypeName = Literal["auto", "float32", "float16", "bfloat16"]


def choose_device(requested: DeviceName = "auto") -> torch.device:
    import torch  # here, so that importing the names above stays cheap

    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def choose_dtype(device: torch.device, requested: DtypeName = "auto") -> torch.dtype:
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if device.type == "cuda":
        # bf16 keeps the fp32 exponent range, so VAEs that overflow in fp16 stay finite.
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    # Half precision on CPU is slow and poorly supported by many kernels.
    return torch.float32
