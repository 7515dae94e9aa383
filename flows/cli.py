"""The ``visuels`` console script: the CLI of ``visuels.cli.main`` with this package's flows.

The library never imports Prefect, so the flows are handed to the CLI from here. A render or a
training run started from the command line without a Prefect server (no ``PREFECT_API_URL``)
runs against a temporary one of its own (``visuels.flows.prefect_server``), which stops with it, however
it stops; and if that server stops first (killed), the command says so in one line and ends.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, TypeVar

from visuels._internal.exit_now import exit_now
from visuels.cli import main as cli_main
from visuels.cli import offline_defaults
from visuels.cli.console import console, say_refused
from visuels.errors import OperationalError, Text, VisuelsError, first_line
from visuels.planning.request import RenderRequest

if TYPE_CHECKING:
    from visuels.review.publish import RenderSummary
    from visuels.training.run import TrainingSummary

Result = TypeVar("Result")


@contextmanager
def _prefect_server() -> Iterator[None]:
    """The server the user set (``PREFECT_API_URL``), else a temporary one for this command."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        _refuse_a_server_that_is_not_there(PREFECT_API_URL.value())
        yield
        return
    from visuels.flows.prefect_server import temporary_server
    from visuels.flows.processes import free_port

    with ExitStack() as stack:
        try:
            stack.enter_context(temporary_server(free_port(), on_lost=_end_without_server))
        except RuntimeError as exc:
            raise OperationalError(
                "Prefect",
                None,
                "its temporary server did not start ({exc}): a busy machine? try again, or start a "
                "server (`make serve`) and set PREFECT_API_URL",
                exc=str(exc),
            ) from None
        yield


def _end_without_server() -> None:
    """The temporary server stopped by itself mid-run (killed, out of memory). The run can no
    longer report to it: every call would be retried for minutes, then Prefect's exit handlers
    would wait for it. Said in one line, and the command ends as a kill ends it: what was recorded
    is kept, and running it again does the rest (its CPU workers end with it)."""
    code = say_refused(
        OperationalError(
            "Prefect",
            None,
            "the temporary server of this command stopped during the run (killed, or out of memory?):"
            " run the command again; what was recorded is kept",
        )
    )
    console.show_cursor(True)  # a progress bar hides it until it ends; this one will not
    sys.stdout.flush()
    sys.stderr.flush()
    exit_now(code)


def _refuse_a_server_that_is_not_there(api_url: str) -> None:
    """One line naming PREFECT_API_URL, not Prefect's traceback, when the server it names cannot be
    used: not an address (bad input), or nothing answering its health check there (the environment)."""
    from prefect.client.orchestration import get_client

    if not re.fullmatch(r"https?://\S+", api_url):
        raise VisuelsError("PREFECT_API_URL", None, "not a Prefect server's address: write it http://HOST:PORT/api")
    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()  # with the API key the settings give, where one is set
    if problem is not None:
        status = getattr(getattr(problem, "response", None), "status_code", None)
        raise OperationalError(
            "PREFECT_API_URL",
            None,
            "no Prefect server answers at {url} ({why}): start it (`make serve`), or unset PREFECT_API_URL to"
            " run on a temporary server of this command's own",
            url=api_url,
            why=Text("it answered HTTP {status}", status=status) if status else first_line(problem),
        )


def _with_server(run: Callable[[], Result]) -> Result:
    with _prefect_server():
        return run()


def run_render_flow(request: RenderRequest) -> RenderSummary:
    # Imported on use: `visuels check` should not pay for importing Prefect and torch.
    from visuels.flows.render_campaign import render_campaign

    return _with_server(lambda: render_campaign(**request.model_dump(mode="json")))


def run_training_flow(charter: str, base: str, options: dict, resume: str, lora_dir: str) -> TrainingSummary:
    """The training flow, with the form's convention: "" for no resume and the default LoRA folder."""
    from visuels.flows.train_lora import train_charter_lora
    from visuels.training.trainer import TrainingConfig

    config = TrainingConfig(**options)
    return _with_server(
        lambda: train_charter_lora(charter=charter, base=base, config=config, resume=resume, lora_dir=lora_dir)
    )


def main() -> int:
    offline_defaults()  # before Prefect is imported, here for the studio
    reviews = None
    if sys.argv[1:2] == ["studio"]:  # only the studio talks to Prefect's API directly
        from prefect.settings import PREFECT_API_URL
        from visuels.flows.studio_reviews import PrefectReviews

        # Reviews wait on a served Prefect: the one PREFECT_API_URL names, else the one `make serve`
        # runs on this machine by default; without one the studio retouches only, and says so.
        if PREFECT_API_URL.value():
            reviews = PrefectReviews()
        elif _answers(SERVED_API_URL):
            reviews = PrefectReviews(SERVED_API_URL)
    return cli_main(render=run_render_flow, train=run_training_flow, reviews=reviews)


SERVED_API_URL = "http://127.0.0.1:4200/api"  # `make serve`'s default port


def _answers(api_url: str) -> bool:
    """Whether a Prefect server answers its health check there, within a second."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=1.0) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False
