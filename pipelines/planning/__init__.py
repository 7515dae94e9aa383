"""Planning: a campaign expanded into render jobs with content-addressed keys, narrowed to a
selection, less what the record has; the bias and stereotype review of its texts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visuels._internal.faces import lazy_attributes

if TYPE_CHECKING:
    from visuels.planning.jobs import RenderJob, batches, expand_jobs, shard_by_commune
    from visuels.planning.lint import lint_campaign
    from visuels.planning.plan import RenderPlan, RenderSetup, plan_render
    from visuels.planning.request import Overrides, RenderRequest, RenderSettings, RunSettings, Selection

__all__ = [
    "Overrides",
    "RenderJob",
    "RenderPlan",
    "RenderRequest",
    "RenderSettings",
    "RenderSetup",
    "RunSettings",
    "Selection",
    "batches",
    "expand_jobs",
    "lint_campaign",
    "plan_render",
    "shard_by_commune",
]
__getattr__ = lazy_attributes(
    __name__,
    {
        "plan": ["plan_render", "RenderPlan", "RenderSetup"],
        "jobs": ["RenderJob", "expand_jobs", "batches", "shard_by_commune"],
        "request": ["RenderSettings", "RenderRequest", "RunSettings", "Selection", "Overrides"],
        "lint": ["lint_campaign"],
    },
)
