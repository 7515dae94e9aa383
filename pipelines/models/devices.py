"""Pick the torch device and dtype: CUDA (bf16 or fp16), Apple MPS (fp16), else CPU (fp32);
and the defaults that depend on the device (batch size, CPU worker processes)."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Literal

from visuels.errors import OperationalError, Text

if TYPE_CHECKING:
    import torch

DeviceName = Literal["auto", "cuda", "mps", "cpu"]
# float8: the denoiser's linear layers multiply in FP8, the rest in bf16 (visuels.models.float8).
DtypeName = Literal["auto", "float32", "float16", "bfloat16", "float8"]
log = logging.getLogger(__name__)
GPU_BATCH_SIZE = 16  # SD1.5 on an H100: 97 % of batch 32's speed for half its memory (RESULTS.md)
CPU_BATCH_SIZE = 4


def check_device(requested: DeviceName) -> None:
    """Refuse a device this machine does not have, in one line naming the option (the machine, not
    the input: a driver that did not load on a GPU machine is what it usually means)."""
    import torch

    if requested == "cuda" and not torch.cuda.is_available():
        built_without = torch.version.cuda is None
        why = Text("PyTorch here is built without CUDA") if built_without else Text("none visible: see `nvidia-smi`")
        raise OperationalError(
            "--device cuda", None, "no CUDA GPU on this machine ({why}): --device auto or cpu", why=why
        )
    if requested == "mps" and not torch.backends.mps.is_available():
        raise OperationalError("--device mps", None, "no Apple GPU (MPS) on this machine: --device auto or cpu")


def choose_device(requested: DeviceName = "auto") -> torch.device:
    import torch  # here, so that importing the names above stays cheap

    if requested != "auto":
        check_device(requested)
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def choose_dtype(device: torch.device, requested: DtypeName = "auto") -> torch.dtype:
    """The dtype the model host receives: ``float8`` gives the FP8 token where the device computes
    FP8 products (``visuels.models.float8``), else the device's own precision."""
    import torch

    if requested == "float8":
        from visuels.models.float8 import FLOAT8, float8_available

        if float8_available(device):
            return FLOAT8
        log.warning("FP8 matrix products are not available on %s: rendering in its own precision", device)
        return choose_dtype(device, "auto")
    if requested != "auto":
        return getattr(torch, requested)
    if device.type == "cuda":
        # bf16 keeps the fp32 exponent range, so VAEs that overflow in fp16 stay finite.
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    # Half precision on CPU is slow and poorly supported by many kernels.
    return torch.float32


def default_batch_size(device: torch.device) -> int:
    return GPU_BATCH_SIZE if device.type == "cuda" else CPU_BATCH_SIZE


def default_cpu_workers(device: torch.device) -> int:
    """On a GPU machine every core but two finishes pictures (one feeds the GPU); on a CPU
    the model needs the cores, so one worker overlaps finishing with the next generation."""
    return max(1, (os.cpu_count() or 2) - 2) if device.type == "cuda" else 1
