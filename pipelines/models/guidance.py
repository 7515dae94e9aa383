"""Classifier-free guidance that stops after a share of the steps: one model pass per step after it.

Guidance matters most while the composition forms, in the first steps; afterwards the second pass
(the unconditional one) costs as much as the first for little change. A campaign's
``guidance_cutoff`` keeps guidance on that share of the steps, then runs the prompt alone.

Diffusers has such callbacks (``SDCFGCutoffCallback``, ``SDXLCFGCutoffCallback``), but they keep
only the last row of the prompt embeddings: right for one picture per call, wrong for visuels'
batches (every picture would follow the last prompt). This one keeps the prompt half of each
conditioning tensor that the family's pipelines hold as [unconditional rows; prompt rows]
(``Family.guidance_cutoff``). Text-to-image and img2img passes stop guidance early; ControlNet
and outpainting passes guide to the end (their pipelines double more inputs than these).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DiffusionPipeline
from visuels.models.families import Family


@dataclass(frozen=True)
class GuidanceCutoff:
    """A diffusers step-end callback: after the first ``share`` of the steps, guidance stops."""

    share: float
    halved: tuple[str, ...]  # the conditioning tensors to keep the prompt rows of

    def guided_steps(self, steps: int) -> int:
        """How many of ``steps`` run guided: at least one."""
        return max(1, round(self.share * steps))

    def __call__(
        self, pipeline: DiffusionPipeline, step_index: int, timestep: torch.Tensor, tensors: dict
    ) -> dict[str, torch.Tensor]:
        if step_index + 1 != self.guided_steps(pipeline.num_timesteps) or not pipeline.do_classifier_free_guidance:
            return {}
        # The pipelines read the scale at every step: from the next one, no unconditional pass.
        pipeline._guidance_scale = 0.0
        return {name: tensors[name].chunk(2)[1] for name in self.halved}


def cutoff_arguments(family: Family, share: float | None) -> dict:
    """A text-to-image or img2img call's callback arguments for ``share``; none without one."""
    if share is None or family.guidance_cutoff is None:
        return {}
    return {
        "callback_on_step_end": GuidanceCutoff(share, family.guidance_cutoff),
        "callback_on_step_end_tensor_inputs": list(family.guidance_cutoff),
    }
