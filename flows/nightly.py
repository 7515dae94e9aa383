"""The render-nightly flow: re-render every active campaign of ``campaigns/``.

Each campaign is its own render-campaign run on the work pool, so campaigns run side by side on
the pool's workers, shard when large, and each asks for its own review. Thanks to incremental
runs, a night with no change renders nothing and loads no model.
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger
from prefect.deployments import run_deployment
from prefect.exceptions import PrefectHTTPStatusError
from pydantic import Field

from flows.sub_runs import wait_for_runs
from pipelines.campaign import load_campaign
from pipelines.errors import VisuelsError
from pipelines.form_fields import form_parameter
from pipelines.paths import campaigns_dir, project_dir

RENDER_DEPLOYMENT = "render-campaign/render-campaign"


@flow(name="render-nightly")
def render_nightly(
    output_dir: Annotated[str, form_parameter("Output folder")] = "outputs",
    shard_size: Annotated[int, Field(ge=0, le=1_000_000), form_parameter("Split above this many pictures")] = 2000,
) -> dict[str, str]:
    """Render every active campaign, each in its own run; return each campaign's final state.

    Args:
        output_dir: Receives the campaigns' files; relative to the project folder.
        shard_size: Each campaign's run splits into sub-runs of about this many pictures,
            0 to 1,000,000; 0: never split.
    """
    logger = get_run_logger()
    project = project_dir()
    started, refused = {}, {}
    for path in sorted(campaigns_dir().glob("*.yaml")):
        try:
            if not load_campaign(path).spec.active:
                continue
        except VisuelsError as exc:  # one broken campaign must not stop the others
            logger.error("skipping %s", exc)
            continue
        parameters = {
            "campaign": path.relative_to(project).as_posix() if path.is_relative_to(project) else str(path),
            "review": True,
            "run": {"output_dir": output_dir, "shard_size": shard_size},
        }
        try:
            started[path.name] = run_deployment(name=RENDER_DEPLOYMENT, parameters=parameters, timeout=0)
        except PrefectHTTPStatusError as exc:  # the server refused this one: the others still run
            # Typically a campaign added since the deployments were registered: the run form's
            # list of campaigns does not have it yet (make serve registers them again).
            logger.error("could not start %s: %s", path.name, exc.response.text)
            refused[path.name] = "Not started"
    finished = wait_for_runs([run.id for run in started.values()])
    states = {name: run.state.name if run.state else "unknown" for name, run in zip(started, finished, strict=True)}
    return states | refused
