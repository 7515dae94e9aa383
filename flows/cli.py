"""The ``visuels`` console script: the CLI of ``pipelines.cli`` with this package's flow as renderer.

``pipelines`` never imports Prefect, so the flow is handed to the CLI from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.cli import RenderRequest
from pipelines.cli import main as cli_main
from pipelines.errors import VisuelsError

if TYPE_CHECKING:
    from pipelines.render import RenderSummary
    from pipelines.training.run import TrainingSummary


def run_render_flow(request: RenderRequest) -> RenderSummary:
    # Imported on use: `visuels check` should not pay for importing Prefect and torch.
    from flows.render_campaign import render_campaign

    try:
        return render_campaign(**request.model_dump(mode="json"))
    except RuntimeError as exc:
        if "ephemeral Prefect API server" not in str(exc):
            raise
        raise VisuelsError(
            "Prefect",
            None,
            "its temporary server did not start in time (a busy machine?): try again, or"
            " start a server (`make serve`) and set PREFECT_API_URL",
        ) from None


def run_training_flow(
    charter: str, base: str, options: dict, resume: str | None, lora_dir: str | None
) -> TrainingSummary:
    from flows.train_lora import train_charter_lora
    from pipelines.training.trainer import TrainingConfig

    return train_charter_lora(
        charter=charter, base=base, config=TrainingConfig(**options), resume=resume, lora_dir=lora_dir
    )


def main() -> int:
    import sys

    reviews = None
    if sys.argv[1:2] == ["studio"]:  # only the studio talks to Prefect's API directly
        from prefect.settings import PREFECT_API_URL

        from flows.studio_reviews import PrefectReviews

        # Reviews wait on a served Prefect (`make serve`); without one the studio retouches only.
        reviews = PrefectReviews() if PREFECT_API_URL.value() else None
    return cli_main(render=run_render_flow, train=run_training_flow, reviews=reviews)
