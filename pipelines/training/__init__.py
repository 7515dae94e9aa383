"""LoRA training on a charter's reference images: dataset, training loop, validation, export of the
weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visuels._internal.faces import lazy_attributes

if TYPE_CHECKING:
    from visuels.training.run import TrainingSummary, run_training
    from visuels.training.trainer import TrainingConfig

__all__ = ["TrainingConfig", "TrainingSummary", "run_training"]
__getattr__ = lazy_attributes(
    __name__,
    {
        "run": ["run_training", "TrainingSummary"],
        "trainer": ["TrainingConfig"],
    },
)
