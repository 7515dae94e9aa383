"""`make serve`: a local Prefect server (SQLite, 127.0.0.1), the work pool, the deployments, workers.

    .venv/bin/python -m visuels.flows.serve [--port 4200] [--workers 1] [--host 127.0.0.1]

Process workers run the flows; render workers (visuels.flows.render_batches, one per GPU, or one on a
machine without) render their batches and keep the model loaded between runs; one that stops
(killed, out of memory) is started again.

Everything runs until Ctrl-C or SIGTERM, which stop every process it started; each of them also
stops by itself if this one is killed. It refuses to start, in one line, on a port already
taken. The server keeps its database in $PREFECT_HOME (default ~/.prefect). For production,
point PREFECT_API_DATABASE_CONNECTION_URL at PostgreSQL (README). The server answers its own
Host names only and refuses cross-site requests (visuels.flows.prefect_server); bound beyond loopback
(``--host``), it also asks for an API key (Prefect's API authentication, with CSRF protection),
written to $PREFECT_HOME/visuels-api-auth (0600) for the other machines' workers. The
integration test drives the same functions with a temporary home and two workers.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path
from typing import IO

from visuels._internal.i18n import Words, user_language, words
from visuels._internal.web_guard import is_loopback
from visuels.cli.console import port, positive, settings_refused
from visuels.config import project_dir
from visuels.errors import OperationalError, VisuelsError
from visuels.flows import prefect_server
from visuels.flows.forms import form_in_words, plain
from visuels.flows.names import GPU_LIMIT, RENDER_DEPLOYMENT, REVIEWS_QUEUE, SHARDS_QUEUE, SLOTS_PER_GPU
from visuels.flows.processes import die_with_parent, free_port_or_refuse, stop, wait_until_healthy
from visuels.marking.keys import ensure_local_chain, keys_dir, signing_files

REPO = Path(__file__).resolve().parents[1]
POOL = "visuels"
API_AUTH_FILE = "visuels-api-auth"  # in $PREFECT_HOME: the API's credentials when bound beyond loopback
# A render worker that stops is started again, at most this often: one failing at start does not spin.
RESTART_AFTER_S = 10.0


def prefect_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "prefect", *arguments]


def serving_environment(api_url: str, extra: dict[str, str] | None = None, auth: str | None = None) -> dict[str, str]:
    """What the server, workers and flow runs share: the API, the project folder, no network; and,
    with ``auth`` (a server bound beyond loopback), the API's credentials and CSRF protection."""
    environment = dict(os.environ)
    environment.update(
        PREFECT_API_URL=api_url,
        VISUELS_HOME=str(project_dir()),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",  # nor the client's telemetry, from the workers and flow runs
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_VERBOSITY="error",
    )
    if auth is not None:
        environment.update(
            PREFECT_SERVER_API_AUTH_STRING=auth,  # the server asks for it...
            PREFECT_API_AUTH_STRING=auth,  # ...which its own workers and flow runs send
            PREFECT_SERVER_CSRF_PROTECTION_ENABLED="true",
        )
    # Every flow run signs with the same keys, wherever its worker starts it.
    environment.setdefault("VISUELS_KEYS_DIR", str(keys_dir().resolve()))
    environment.update(extra or {})
    return environment


def api_credentials(prefect_home: Path) -> str:
    """The API's ``user:password`` for a server bound beyond loopback: made once, kept 0600."""
    path = prefect_home / API_AUTH_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    prefect_home.mkdir(parents=True, exist_ok=True)
    credentials = f"visuels:{secrets.token_urlsafe(24)}"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(credentials + "\n")
    return credentials


def start_server(
    port: int, environment: dict[str, str], host: str = "127.0.0.1", allowed: list[str] | None = None
) -> subprocess.Popen:
    """The Prefect server behind the web guard (visuels.flows.prefect_server); its errors reach the console."""
    return subprocess.Popen(
        prefect_server.command(port, host, allowed), env=environment, cwd=REPO, preexec_fn=die_with_parent
    )


def register(environment: dict[str, str], pool_gpus: int) -> None:
    """Work pool and queues, the pool's GPU limit (SLOTS_PER_GPU per GPU of every machine in the
    pool: a render chunk holds one, a training run a GPU's worth) and every deployment."""
    _create_pool_and_limit(environment, SLOTS_PER_GPU * pool_gpus)
    deploy = subprocess.run(
        prefect_command("--no-prompt", "deploy", "--all"), env=environment, cwd=REPO, capture_output=True, text=True
    )
    if deploy.returncode:
        raise RuntimeError(f"prefect deploy failed: {deploy.stdout}{deploy.stderr}")
    present_deployments(environment, words(user_language()))


def _create_pool_and_limit(environment: dict[str, str], slots: int) -> None:
    """Through the API client, in this process (each ``prefect`` command would import Prefect again:
    seconds apiece): what exists already is kept, the GPU limit sized again as asked now."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
        WorkPoolCreate,
    )
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.workers.process import ProcessWorker

    pool = WorkPoolCreate(name=POOL, type="process", base_job_template=ProcessWorker.get_default_base_job_template())
    with _client_settings(environment), get_client(sync_client=True) as client:
        with suppress(ObjectAlreadyExists):
            client.create_work_pool(pool)
        for name in (SHARDS_QUEUE, REVIEWS_QUEUE):
            with suppress(ObjectAlreadyExists):
                client.create_work_queue(name, work_pool_name=POOL)
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=slots))
        except ObjectAlreadyExists:
            client.update_global_concurrency_limit(GPU_LIMIT, GlobalConcurrencyLimitUpdate(limit=slots))


def _client_settings(environment: dict[str, str]) -> AbstractContextManager:
    """Prefect's client settings for the API of ``environment``: its URL and credentials."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    settings = {PREFECT_API_URL: environment["PREFECT_API_URL"]}
    settings[PREFECT_API_AUTH_STRING] = environment.get("PREFECT_API_AUTH_STRING")
    return temporary_settings(settings)


def present_deployments(environment: dict[str, str], t: Words) -> None:
    """Every deployment's description and run form in the words of ``t`` (the language of whoever
    runs `make serve`), and the render form's dropdowns listed now: the campaigns of the served
    project's campaigns/ folder (``VISUELS_HOME`` of the workers' environment) and their
    audiences; a campaign added later is offered after `make serve` again."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    folder = Path(environment["VISUELS_HOME"]) / "campaigns"
    with _client_settings(environment), get_client(sync_client=True) as client:
        for deployment in client.read_deployments():
            schema = deployment.parameter_openapi_schema or {}
            if deployment.name == RENDER_DEPLOYMENT.partition("/")[2]:
                offer_campaigns(schema, folder, t)
            update = DeploymentUpdate(
                description=t(plain(deployment.description or "")) if deployment.description else None,
                parameter_openapi_schema=form_in_words(schema, t),
            )
            client.update_deployment(deployment.id, update)


def offer_campaigns(schema: dict, folder: Path, t: Words) -> None:
    """The render form's campaigns, audiences and formats, those of ``folder``'s campaigns, and
    which of them wait for a designer's approval, said where it is chosen."""
    from visuels.planning.request import campaigns_waiting_for_review, known_audiences, known_campaigns, known_formats

    campaigns, audiences_known, formats_known = known_campaigns(folder), known_audiences(folder), known_formats(folder)
    waiting = campaigns_waiting_for_review(folder)
    properties = schema.get("properties", {})
    if "campaign" in properties and campaigns:
        properties["campaign"]["enum"] = campaigns
    audiences = properties.get("selection", {}).get("properties", {}).get("audiences", {})
    if "items" in audiences and audiences_known:
        audiences["items"]["enum"] = audiences_known
    formats = properties.get("selection", {}).get("properties", {}).get("formats", {})
    if "items" in formats and formats_known:  # not poster_a3_300dpi when no campaign uses it
        formats["items"]["enum"] = formats_known
    if "review" in properties and campaigns:  # each campaign's own setting, said where it is chosen
        says = (
            t.plural(
                "{names} waits for a designer's approval (`review: true` in its file), the others publish at once",
                "{names} wait for a designer's approval (`review: true` in their files), the others publish at once",
                len(waiting),
                names=", ".join(waiting),
            )
            if waiting
            else t("no campaign here waits for a designer's approval (`review: true` in its file would)")
        )
        # Said in full here: the schema's texts are translated after, and this one is already.
        properties["review"]["description"] = t(
            "As the campaign says: {says}. Yes or no: for this run only.", says=says
        )


def start_worker(
    name: str,
    environment: dict[str, str],
    limit: int | None = 2,
    output: IO | None = None,
    gpu: int | None = None,
    queue: str = "default",
) -> subprocess.Popen:
    """A process worker of the pool's ``queue``: it starts each flow run in a new process (on GPU
    ``gpu`` if given), at most ``limit`` at once (None: no limit)."""
    extra = {"CUDA_VISIBLE_DEVICES": str(gpu)} if gpu is not None else {}
    command = ["worker", "start", "--pool", POOL, "--work-queue", queue, "--name", name]
    command += ["--limit", str(limit)] if limit is not None else []
    return subprocess.Popen(
        prefect_command(*command),
        env=environment | extra,
        cwd=environment["VISUELS_HOME"],  # this machine's project folder
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        preexec_fn=die_with_parent,
    )


def start_render_worker(
    environment: dict[str, str], gpu: int | None, output: IO | None = None, compile_models: bool = False
) -> subprocess.Popen:
    """A render worker (visuels.flows.render_batches) that keeps its models loaded; on GPU ``gpu`` if given."""
    extra = {"CUDA_VISIBLE_DEVICES": str(gpu)} if gpu is not None else {}
    return subprocess.Popen(
        [sys.executable, "-m", "visuels.flows.render_batches", *(["--compile"] if compile_models else [])],
        env=environment | extra,
        cwd=environment["VISUELS_HOME"],  # this machine's project folder
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        preexec_fn=die_with_parent,
    )


def wait_for_render_workers(
    api_url: str, render_workers: list[subprocess.Popen], timeout: float = 120.0, auth: str | None = None
) -> None:
    """Until every render worker is connected: before that, runs would render in their own process."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings
    from visuels.flows.render_batches import connected_render_workers  # imports the model libraries: only here

    deadline = time.monotonic() + timeout
    with temporary_settings({PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth}):
        while len(connected_render_workers()) < len(render_workers):
            exited = [worker.returncode for worker in render_workers if worker.poll() is not None]
            if exited:
                raise OperationalError(
                    "render worker",
                    None,
                    "it stopped (exit code {code}) before it connected to the server: its log lines above"
                    " say why; start again",
                    code=exited[0],
                )
            if time.monotonic() > deadline:
                raise OperationalError(
                    "render worker", None, "not connected to the server within {seconds:.0f} s", seconds=timeout
                )
            time.sleep(0.5)


def start_flow_workers(
    environment: dict[str, str], workers: int, gpus: int, logs: Path | None = None, machine: str | None = None
) -> list[subprocess.Popen]:
    """Process workers for the default queue, as many for the shards queue, one for reviews.

    Why no run can wait for ever for a slot: a run waits only for runs of the level below it (the
    nightly for campaigns' runs, a sharded run for its shards), shards wait for no run, and the
    shards queue has workers of its own, which no waiting run can occupy; so its shards always
    progress, then their parent, then the nightly. A review waiting for its answer holds no slot
    (it is suspended), and an answered one starts at once (its worker has no limit; a review
    does little: it moves files and appends ledger rows). A run that finds no render worker
    renders in its own process, on its worker's GPU. Workers are named after ``machine`` (default:
    this host), their queue and number: names are unique in the pool, whichever machines serve it.
    With ``logs``, each worker writes to ``logs/<name>.log``."""
    started = []
    layout = [(queue, number, 2) for queue in ("default", SHARDS_QUEUE) for number in range(workers)]
    for queue, number, limit in [*layout, (REVIEWS_QUEUE, 0, None)]:
        name, gpu = f"{machine or socket.gethostname()}-{queue}-{number}", number % gpus if gpus else None
        # A log file per worker where asked (tests), else the console; the worker keeps its copy.
        with (logs / f"{name}.log").open("w") if logs else nullcontext() as output:
            started.append(start_worker(name, environment, limit, output=output, gpu=gpu, queue=queue))
    return started


def keep_render_workers_up(
    server: subprocess.Popen,
    render_workers: list[subprocess.Popen],
    start_again: Callable[[int], subprocess.Popen],
    started: list[subprocess.Popen],
) -> None:
    """Until the server stops: a render worker that stops meanwhile (killed, out of memory) is
    started again (``start_again(its index)``, added to ``started``), or runs would render in their
    own processes, loading their models each time, and nothing would say so."""
    last_start = [time.monotonic()] * len(render_workers)
    while server.poll() is None:
        for index, worker in enumerate(render_workers):
            if worker.poll() is not None and time.monotonic() - last_start[index] >= RESTART_AFTER_S:
                stopped = words(user_language())(
                    "a render worker stopped (exit code {code}): starting it again", code=worker.returncode
                )
                print(stopped, flush=True)
                render_workers[index] = start_again(index)
                started.append(render_workers[index])
                last_start[index] = time.monotonic()
        time.sleep(1.0)


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def _stop_on_sigterm(_signal: int, _frame: object) -> None:
    raise SystemExit(0)  # unwinds main(): its `finally` stops every process it started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=port, default=4200)
    parser.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on; beyond loopback the API asks for a key"
    )
    parser.add_argument(
        "--allow-host", action="append", default=[], metavar="NAME", help="a name the server is reached by (repeatable)"
    )
    parser.add_argument("--workers", type=positive, help="process workers, which run the flows (default: one per GPU)")
    parser.add_argument("--compile", action="store_true", help="render workers torch.compile their models")
    parser.add_argument(
        "--pool-gpus",
        type=positive,
        help="GPUs of every machine serving the pool, this one included (default: this one's)",
    )
    args = parser.parse_args(argv)
    if refused := settings_refused():
        return refused
    t = words(user_language())
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        free_port_or_refuse(args.port, "0.0.0.0" if args.host in ("0.0.0.0", "::") else args.host)
    except VisuelsError as exc:
        print(t("error: {message}", message=exc.said(t)), file=sys.stderr)
        return exc.exit_code
    api_url = f"http://127.0.0.1:{args.port}/api"
    if ensure_local_chain(keys_dir()):
        # A first run would otherwise fail on export: no key to sign its C2PA manifests with.
        print(
            t(
                "made a local signing chain in {folder} for trials; production: see `visuels keys init`",
                folder=keys_dir(),
            )
        )
    try:  # keys that cannot sign would fail every run the pool is sent, one by one: say it once, now
        signing_files()
    except VisuelsError as exc:
        print(t("error: {message}", message=exc.said(t)), file=sys.stderr)
        return exc.exit_code
    auth = None
    if not is_loopback(args.host):
        from prefect.settings import PREFECT_HOME

        auth = api_credentials(PREFECT_HOME.value())
        print(t("the API asks for a key beyond loopback: {file} (0600)", file=PREFECT_HOME.value() / API_AUTH_FILE))
    environment = serving_environment(api_url, auth=auth)
    gpus = gpu_count()
    processes = [start_server(args.port, environment, args.host, args.allow_host)]
    try:
        wait_until_healthy(api_url, processes[0])
        register(environment, args.pool_gpus or max(1, gpus))
        processes += start_flow_workers(environment, args.workers or max(1, gpus), gpus)
        # Render workers keep their model loaded between runs: one per GPU, or one on the CPU.
        render_gpus = list(range(gpus)) or [None]
        render_workers = [start_render_worker(environment, gpu, compile_models=args.compile) for gpu in render_gpus]
        processes += render_workers
        wait_for_render_workers(api_url, render_workers, auth=auth)
        print(
            t(
                "Prefect UI: {address}  (deployments registered; Ctrl-C stops everything)",
                address=f"http://127.0.0.1:{args.port}",
            )
        )
        keep_render_workers_up(
            processes[0],
            render_workers,
            lambda index: start_render_worker(environment, render_gpus[index], compile_models=args.compile),
            processes,
        )
    except KeyboardInterrupt:
        pass
    except VisuelsError as exc:  # a process of the pool failed to start: one line, everything stopped
        print(t("error: {message}", message=exc.said(t)), file=sys.stderr)
        return exc.exit_code
    finally:
        stop(processes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
