"""The render-nightly flow: re-render every active campaign of ``campaigns/``.

Each campaign is its own render-campaign run on the work pool, so campaigns run side by side on
the pool's workers, shard when large, and each asks for its own review when its campaign says so
(`review: true`). Thanks to incremental runs, a night with no change renders nothing and loads no
model.
"""

from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger
from prefect.deployments import run_deployment
from prefect.exceptions import PrefectHTTPStatusError
from prefect.states import Failed, State
from pydantic import Field
from visuels._internal.i18n import counted
from visuels.config import campaigns_dir, project_dir
from visuels.errors import VisuelsError
from visuels.flows.forms import form_parameter
from visuels.flows.names import RENDER_DEPLOYMENT
from visuels.flows.sub_runs import wait_for_runs
from visuels.inputs.campaign import load_campaign
from visuels.inputs.file_names import PathText
from visuels.planning.request import campaign_files


@flow(name="render-nightly")
def render_nightly(
    output_dir: Annotated[PathText, form_parameter("Output folder")] = "outputs",
    shard_size: Annotated[int, Field(ge=0, le=1_000_000), form_parameter("Split above this many pictures")] = 2000,
) -> dict[str, str] | State:
    """Render every active campaign, each in its own run; return each campaign's final state.

    The night is Failed when any campaign did not complete (it could not be read, the server
    refused its run, or its run failed), and its message names each with its one-line reason, so
    an automation on failed runs tells someone; the other campaigns still run.

    Args:
        output_dir: Receives the campaigns' files; relative to the project folder.
        shard_size: Each campaign's run splits into sub-runs of about this many pictures,
            0 to 1,000,000; 0: never split.
    """
    logger = get_run_logger()
    project, folder = project_dir(), campaigns_dir()
    if not folder.is_dir():  # a night that renders nothing must not pass for a quiet one
        return Failed(
            message=f"no campaigns folder at {folder}: set VISUELS_HOME to the project folder, whose"
            " campaigns/ the nightly renders"
        )
    started, states, failures = {}, {}, {}
    for path in campaign_files(folder):
        try:
            if not load_campaign(path).spec.active:
                continue
        except VisuelsError as exc:  # one broken campaign must not stop the others
            logger.error("skipping %s", exc)
            states[path.name], failures[path.name] = "Not read", str(exc)
            continue
        parameters = {
            "campaign": path.relative_to(project).as_posix() if path.is_relative_to(project) else str(path),
            "review": "as the campaign says",
            "run": {"output_dir": output_dir, "shard_size": shard_size},
        }
        try:
            started[path.name] = run_deployment(name=RENDER_DEPLOYMENT, parameters=parameters, timeout=0)
        except PrefectHTTPStatusError as exc:  # the server refused this one: the others still run
            # Typically a campaign added since the deployments were registered: the run form's
            # list of campaigns does not have it yet (make serve registers them again).
            logger.error("could not start %s: %s", path.name, exc.response.text)
            states[path.name] = "Not started"
            failures[path.name] = f"not started: {exc.response.text.strip()[:300]} (run `make serve` again)"
    finished = wait_for_runs([run.id for run in started.values()])
    for name, run in zip(started, finished, strict=True):
        states[name] = run.state.name if run.state else "unknown"
        if not (run.state and run.state.is_completed()):
            reason = (run.state.message or "").strip() if run.state else ""
            failures[name] = states[name] + (f": {reason}" if reason else "")
    if failures:
        message = f"{counted(len(failures), 'campaign')} did not complete: " + "; ".join(
            f"{name}: {reason}" for name, reason in sorted(failures.items())
        )
        return Failed(message=message, data=states)
    return states
