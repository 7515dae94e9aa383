"""The render engine: a process's renderer (GPU stage, bounded queue, CPU worker pool), exporting
each picture with its record, job claims as leases, and the functions runs share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visuels._internal.faces import lazy_attributes

if TYPE_CHECKING:
    from visuels.engine.claims import JobClaims, abandoned
    from visuels.engine.cpu_stage import CpuStage, ExportTarget
    from visuels.engine.export import ExportedFile, export_picture
    from visuels.engine.renderer import Renderer, RenderStoppedError
    from visuels.engine.run import export_target, render_jobs, rendered_since_plan

__all__ = [
    "CpuStage",
    "ExportTarget",
    "ExportedFile",
    "JobClaims",
    "RenderStoppedError",
    "Renderer",
    "abandoned",
    "export_picture",
    "export_target",
    "render_jobs",
    "rendered_since_plan",
]
__getattr__ = lazy_attributes(
    __name__,
    {
        "renderer": ["Renderer", "RenderStoppedError"],
        "cpu_stage": ["CpuStage", "ExportTarget"],
        "export": ["ExportedFile", "export_picture"],
        "claims": ["JobClaims", "abandoned"],
        "run": ["export_target", "render_jobs", "rendered_since_plan"],
    },
)
