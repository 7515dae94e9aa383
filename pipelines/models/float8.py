"""FP8 matrix products for the denoiser's linear layers (issue #31): the precision ``float8``.

Each linear layer of the UNet or transformer keeps its bf16 weight (a LoRA is fused into it, and
restored exactly, as in bf16) and a copy in FP8 (e4m3, one scale per output row) made from it
after every change. Its forward pass scales each row of its input into FP8 and multiplies with
``torch._scaled_mm``, which accumulates in fp32 and writes bf16: the tensor cores' FP8 rate,
twice bf16's on Hopper. Convolutions, norms, the text encoders and the VAE stay in bf16.

FP8 matrix products need a GPU of compute capability 8.9 or more (Ada, Hopper, Blackwell); the
CPU build of PyTorch computes them too (slowly: the tests' path). Elsewhere ``float8`` falls back
to the device's own precision, the layers untouched. The pixels differ from bf16's by the FP8
rounding, so ``float8`` is a precision of its own in the job key.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

FLOAT8 = torch.float8_e4m3fn  # the token the host receives as "dtype" for the precision float8
_LARGEST = float(torch.finfo(FLOAT8).max)  # 448
_TINY = 1e-12  # a row of zeros keeps a finite scale


def float8_available(device: torch.device) -> bool:
    """Whether FP8 matrix products run on ``device`` (CUDA from compute capability 8.9, or a CPU)."""
    if not hasattr(torch, "_scaled_mm"):
        return False
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= (8, 9)
    return device.type == "cpu"


class Float8Linear(torch.nn.Linear):
    """A linear layer that multiplies in FP8; its bf16 weight stays the one a LoRA changes."""

    float8_weight: torch.Tensor  # (out, in), e4m3
    float8_scale: torch.Tensor  # (1, out), fp32: the weight's scale per output row

    def refresh(self) -> None:
        """Make the FP8 copy of the weight as it is now (after a LoRA is fused or restored)."""
        with torch.no_grad():
            weight = self.weight.float()
            scale = (weight.abs().amax(dim=1) / _LARGEST).clamp(min=_TINY)
            quantized = (weight / scale[:, None]).to(FLOAT8)
            if "float8_weight" in self._buffers:  # in place: a compiled graph keeps its inputs
                self.float8_weight.copy_(quantized)
                self.float8_scale.copy_(scale[None, :])
            else:
                self.register_buffer("float8_weight", quantized, persistent=False)
                self.register_buffer("float8_scale", scale[None, :].contiguous(), persistent=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        rows = inputs.reshape(-1, inputs.shape[-1])
        scale = (rows.abs().amax(dim=1, keepdim=True).float() / _LARGEST).clamp(min=_TINY)
        quantized = (rows.float() / scale).to(FLOAT8)
        bias = None if self.bias is None else self.bias.to(inputs.dtype)
        product = torch._scaled_mm(
            quantized,
            self.float8_weight.t(),  # column-major, as the FP8 kernels want it
            scale_a=scale,
            scale_b=self.float8_scale,
            bias=bias,
            out_dtype=inputs.dtype,
        )
        return product.reshape(*inputs.shape[:-1], self.out_features)


def _eligible(layer: torch.nn.Module) -> bool:
    # The FP8 kernels need both sizes of the weight in multiples of 16.
    return (
        type(layer) is torch.nn.Linear
        and layer.in_features % 16 == 0
        and layer.out_features % 16 == 0
        and layer.weight.dtype in (torch.bfloat16, torch.float32)
    )


def to_float8(denoiser: torch.nn.Module) -> int:
    """Turn the eligible linear layers of ``denoiser`` into ``Float8Linear`` in place (a LoRA
    loaded later wraps them as it wraps any linear layer); return how many."""
    count = 0
    for layer in denoiser.modules():
        if _eligible(layer):
            layer.__class__ = Float8Linear
            layer.refresh()
            count += 1
    log.info("%d linear layers multiply in FP8", count)
    return count


def refresh_float8(denoiser: torch.nn.Module) -> None:
    """After a LoRA was fused into the weights or taken out: new FP8 copies."""
    for layer in denoiser.modules():
        if isinstance(layer, Float8Linear):
            layer.refresh()
