"""The ``visuels`` console script: the CLI of ``pipelines.cli`` with this package's flow as renderer.

``pipelines`` never imports Prefect, so the flow is handed to the CLI from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.cli import RenderRequest
from pipelines.cli import main as cli_main

if TYPE_CHECKING:
    from pipelines.render import RenderSummary


def run_render_flow(request: RenderRequest) -> RenderSummary:
    # Imported on use: `visuels check` should not pay for importing Prefect and torch.
    from flows.render_campaign import render_campaign

    return render_campaign(**request.model_dump(mode="json"))


def main() -> int:
    return cli_main(render=run_render_flow)
