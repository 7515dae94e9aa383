"""Cropping, resampling and grading each generated picture on the device that rendered it (its
GPU), so that the CPU stage starts from the picture at its final size (``VISUELS_FORMAT_ON_DEVICE``).

The crop is chosen as on the CPU (``postprocess.resize.crop_window``, from the generated picture's
detail, on a 160-pixel copy). The crop is enlarged with torch's bicubic (a = -0.75, as OpenCV's)
or reduced by area averaging, in float32, then graded with the CPU's own table of offsets
(``postprocess.palette.grading_offsets``): a pixel of the same colour is graded to the same
colour. Reducing weighs each input pixel by the share of the output pixel it covers, as OpenCV's
INTER_AREA does: the same bytes. Enlarging in floating point rounds under 0.1 % of the pixels one
level away from OpenCV's fixed point (a few of those then fall in the next grading cell: 70-81 dB
PSNR between the two paths' outputs on the demo model). So the keys stay the same: where a
picture's arithmetic runs is the machine's choice, as its device is.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.nn import functional
from visuels.inputs.charter import Charter
from visuels.planning.jobs import RenderJob
from visuels.postprocess.chain import Formatted, picture_size
from visuels.postprocess.palette import LUT_BITS, grading_offsets, grading_strength, score_size
from visuels.postprocess.resize import crop_window


def area_weights(size_in: int, size_out: int) -> np.ndarray:
    """The size_out × size_in matrix that averages each output pixel's footprint over the input
    pixels it covers, each weighted by the share it covers (OpenCV's INTER_AREA; torch's "area"
    mode ignores the fractions at a footprint's ends)."""
    scale = size_in / size_out
    starts = np.arange(size_out)[:, None] * scale
    pixels = np.arange(size_in)[None, :]
    overlap = np.minimum(starts + scale, pixels + 1) - np.maximum(starts, pixels)
    return (np.clip(overlap, 0, None) / scale).astype(np.float32)


def resample_on_device(pixels: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """``pixels`` (H×W×3 uint8, on any device) at exactly ``width`` × ``height``: bicubic to enlarge,
    pixel-area averaging to reduce, as ``postprocess.resize.resample`` does on the CPU."""
    if tuple(pixels.shape[:2]) == (height, width):
        return pixels
    if width * height > pixels.shape[0] * pixels.shape[1]:
        batch = pixels.permute(2, 0, 1)[None].float()
        enlarged = functional.interpolate(batch, size=(height, width), mode="bicubic", align_corners=False)
        resized = enlarged[0].permute(1, 2, 0)
    else:
        rows = torch.from_numpy(area_weights(pixels.shape[0], height)).to(pixels.device)
        columns = torch.from_numpy(area_weights(pixels.shape[1], width)).to(pixels.device)
        resized = torch.einsum("yh,hwc,xw->yxc", rows, pixels.float(), columns)
    return resized.round().clamp(0, 255).to(torch.uint8).contiguous()


def grade_on_device(pixels: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``pixels`` (H×W×3 uint8) plus each one's lattice cell's offset (``grading_offsets``, int16 on
    the same device), clipped: the CPU's grading, gathered on the device."""
    coarse = (pixels >> (8 - LUT_BITS)).long()
    cells = (coarse[..., 0] << (2 * LUT_BITS)) | (coarse[..., 1] << LUT_BITS) | coarse[..., 2]
    return (pixels.short() + offsets[cells]).clamp(0, 255).to(torch.uint8)


class DeviceFormatter:
    """Formats a run's pictures on ``device`` for one charter; its offsets table lives on the device."""

    def __init__(self, device: torch.device, charter: Charter) -> None:
        self.device = device
        self.charter = charter
        grading = charter.spec.palette_grading
        palette = tuple(colour.rgb for colour in charter.spec.palette)
        # 64³ × 3 int16: 1.5 MB, sent to the device once.
        self.offsets = (
            torch.from_numpy(grading_offsets(palette, grading_strength(grading.strength))).to(device)
            if grading.strength > 0
            else None
        )

    def format(self, job: RenderJob, pixels: np.ndarray) -> Formatted:
        """``pixels`` (the job's generated picture) cropped, resampled and graded to its picture size."""
        width, height = picture_size(self.charter.template(job.layout, job.format), job.width, job.height)
        left, top, right, bottom = crop_window(Image.fromarray(pixels), width / height)
        crop = torch.from_numpy(np.ascontiguousarray(pixels[top:bottom, left:right])).to(self.device)
        resized = resample_on_device(crop, width, height)
        ungraded_small = resample_on_device(resized, *score_size(width, height))
        graded = resized if self.offsets is None else grade_on_device(resized, self.offsets)
        return Formatted(graded=graded.cpu().numpy(), ungraded_small=ungraded_small.cpu().numpy())
