"""The ``visuels`` command line: check inputs, render campaigns, run the demo.

Bad input ends with one line on stderr naming the file and the field, and exit code 2.
Rendering goes through the Prefect flow, which ``flows.cli`` hands in as ``render``: this
package never imports Prefect.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pipelines.config_files import first_problem
from pipelines.errors import EXIT_BAD_INPUT, EXIT_FINDING, EXIT_OK, CampaignError, VisuelsError
from pipelines.render_request import Overrides, RenderRequest, RunSettings, Selection
from pipelines.third_party_logs import quiet_third_party_logs

if TYPE_CHECKING:  # pipelines.render imports torch: too slow for `visuels check`
    from pipelines.campaign import Campaign
    from pipelines.database import Database
    from pipelines.derivatives import Derivative
    from pipelines.render import RenderPlan, RenderSummary
    from pipelines.studio.reviews import ReviewBackend
    from pipelines.training.run import TrainingSummary

SAMPLE_CAMPAIGN = Path(__file__).resolve().parents[1] / "campaigns" / "ete-2027.yaml"
SAMPLE_CHARTER = Path(__file__).resolve().parents[1] / "brand_assets" / "solane"
DEMO_COMMUNES = ["Sète", "Castelnau-d'Estrétefonds", "Collioure"]
DATABASE_HELP = (
    "the database of record: a SQLAlchemy URL or a SQLite file"
    " (default: $VISUELS_DATABASE_URL, else outputs/visuels.sqlite)"
)
PROGRESS_EVERY_S = 1.0  # how often the progress bar looks at the record
SERVER_START_TIMEOUT_S = 120

RenderFlow = Callable[[RenderRequest], "RenderSummary"]
Trainer = Callable[[str, str, dict, str, str], "TrainingSummary"]  # "": no resume, the default LoRA folder
TRAINING_OPTIONS: dict[str, tuple[type, str]] = {
    "steps": (int, "optimiser steps, 1-100,000 (default: 500)"),
    "rank": (int, "LoRA rank, 1-256: larger learns more, and overfits sooner (default: 8)"),
    "alpha": (float, "LoRA alpha, > 0 (default: the rank)"),
    "learning_rate": (float, "learning rate, > 0 and <= 1 (default: 1e-4)"),
    "lr_schedule": (str, "constant, cosine or linear (default: constant)"),
    "resolution": (int, "training picture side, a multiple of 64 from 64 to 2048 (default: 256)"),
    "batch_size": (int, "pictures per step, 1-64 (default: 1)"),
    "gradient_accumulation": (int, "steps whose gradients are summed before an update, 1-64 (default: 1)"),
    "gradient_checkpointing": (bool, "trade compute for memory (large models on small GPUs)"),
    "train_text_encoder": (bool, "also train a LoRA on the text encoder's attention (slower: embeddings each step)"),
    "min_snr_gamma": (float, "Min-SNR loss weighting gamma, > 0 (default: 5)"),
    "seed": (int, "random seed, >= 0 (default: 0)"),
    "checkpoint_every": (int, "save a resumable checkpoint every N steps (default: 100)"),
}

# soft_wrap: a message stays on one line whatever the terminal width.
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number}: must be at least 1")
    return number


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="visuels", description="Per-commune campaign visuals, marked as AI-generated."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        # The line `visuels -h` shows for a command is also the description of `visuels NAME -h`.
        return commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".")

    check = command("check", "validate charters, campaigns or communes CSV files")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")

    def add_render_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--output-dir", default="outputs", help="where to write (default: ./outputs)")
        command.add_argument(
            "--batch-size", type=_positive, help="images per model call (default: 16 on a GPU, else 4)"
        )
        command.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], default="auto")
        command.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"], default="auto")
        command.add_argument(
            "--cpu-workers", type=_positive, help="processes that finish the pictures (default: by device)"
        )
        command.add_argument(
            "--compile", action="store_true", help="torch.compile the model (faster on a GPU after a minute)"
        )
        command.add_argument(
            "-v", "--verbose", action="store_true", help="show the flow's log lines (Prefect's, each task's)"
        )

    render = command("render", "render a campaign through the Prefect flow")
    render.add_argument("campaign", type=Path, metavar="CAMPAIGN.yaml")
    render.add_argument("--communes", help="comma-separated names or INSEE codes, a subset of the campaign's")
    render.add_argument("--max-communes", type=_positive, help="only the first N selected communes")
    render.add_argument(
        "--model", help="override the campaign's model: demo | DIR | FILE.safetensors::CONFIG_DIR | hub:OWNER/NAME"
    )
    add_render_options(render)

    demo = command("demo", "render the sample campaign for a few communes with the demo model")
    demo.add_argument(
        "--communes", help=f"comma-separated, some of the demo's: {', '.join(DEMO_COMMUNES)} (default: all)"
    )
    add_render_options(demo)

    verify = command("verify", "check the AI marking of files, layer by layer")
    verify.add_argument("files", nargs="+", type=Path, metavar="FILE")
    verify.add_argument("--json", action="store_true", help="one JSON report per file, as a list")
    verify.add_argument("--database", help=DATABASE_HELP)
    verify.add_argument("--charter", type=Path, default=SAMPLE_CHARTER, help="charter whose label to look for")
    verify.add_argument(
        "--allow-untrusted",
        action="store_true",
        help="accept a C2PA signature by a certificate the trust anchors do not know (default: refused)",
    )

    finalize = command("finalize", "mark again files edited outside visuels (Photoshop, GIMP...) from their original")
    finalize.add_argument("files", nargs="+", type=Path, metavar="EDITED")
    finalize.add_argument(
        "--from",
        dest="original",
        type=Path,
        metavar="ORIGINAL",
        help="the exported file they were edited from (default: found through each file's watermark)",
    )
    finalize.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="OUT",
        help="a file, or a folder for several (default: beside each, NAME-final.EXT)",
    )
    finalize.add_argument("--database", help=DATABASE_HELP)
    finalize.add_argument("--charter", type=Path, default=SAMPLE_CHARTER, help="the charter to check them against")

    retouch = command("retouch", "repaint part of an output with the model that made it; each variant is marked again")
    retouch.add_argument("image", type=Path, metavar="IMAGE", help="an exported file")
    retouch.add_argument(
        "--mask", type=Path, help="white where to repaint, black elsewhere (or painted on transparency)"
    )
    retouch.add_argument("--prompt", required=True, help="what to paint")
    retouch.add_argument("--mode", choices=["inpaint", "img2img"], default="inpaint")
    retouch.add_argument("--variants", type=_positive, default=4, help="how many (default: 4)")
    retouch.add_argument("--strength", type=float, default=0.85, help="0 keeps the picture, 1 repaints (default: 0.85)")
    retouch.add_argument("--seed", type=int, default=0, help="variant i uses seed + i (default: 0)")
    retouch.add_argument("-o", "--output-dir", type=Path, help="where to write the variants (default: beside IMAGE)")
    retouch.add_argument("--model", help="the model that made IMAGE, if its record cannot say where it is")
    retouch.add_argument("--lora", help="the LoRA that made IMAGE, if its record cannot say where it is")
    retouch.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], default="auto")
    retouch.add_argument("--database", help=DATABASE_HELP)
    retouch.add_argument("--charter", type=Path, default=SAMPLE_CHARTER, help="the charter to check them against")

    studio = command(
        "studio", "the designers' studio in a browser: review runs, retouch outputs, finalize edited files"
    )
    studio.add_argument("--port", type=int, default=7860, help="(default: 7860)")
    studio.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default: 127.0.0.1, this user only); any other asks for a token",
    )
    studio.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a name the studio is reached by besides 127.0.0.1 and localhost (repeatable)",
    )
    studio.add_argument("--output-dir", type=Path, default=Path("outputs"), help="the outputs (default: ./outputs)")
    studio.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], default="auto", help="for retouching")
    studio.add_argument("--charter", type=Path, default=SAMPLE_CHARTER, help="the charter to check retouches against")

    doctor = command("doctor", "what this machine has (GPU, versions, model, keys) and what is missing")
    doctor.add_argument("campaign", type=Path, nargs="?", metavar="CAMPAIGN.yaml", help="also its model and LoRA")
    doctor.add_argument("--output-dir", type=Path, default=Path("outputs"))

    keys = command("keys", "signing keys for C2PA manifests")
    keys.add_argument("action", choices=["init"], help="init: create a local root, intermediate and signer")
    keys.add_argument("--dir", type=Path, help="where (default: $VISUELS_KEYS_DIR or ./keys)")

    train = command("train", "train the charter's style LoRA on its reference images")
    train.add_argument("charter", type=Path, metavar="CHARTER_DIR")
    train.add_argument("--base", default="demo", help="base model: demo or a diffusers folder (default: demo)")
    train.add_argument("--resume", metavar="RUN", help="continue an interrupted run from its last checkpoint")
    train.add_argument("--lora-dir", help="root of the LoRA folders (default: $VISUELS_LORA_DIR or ./lora)")
    for option, (kind, explanation) in TRAINING_OPTIONS.items():
        if kind is bool:
            train.add_argument(f"--{option.replace('_', '-')}", action="store_true", default=None, help=explanation)
        else:
            train.add_argument(f"--{option.replace('_', '-')}", type=kind, help=explanation)

    ledger_command = command("ledger", "the provenance ledger")
    ledger_command.add_argument("action", choices=["verify"], help="verify: check the hash chain")
    ledger_command.add_argument("--database", help=DATABASE_HELP)
    return parser, commands.choices


def _describe_campaign(campaign: Campaign) -> str:
    spec = campaign.spec
    versions = sum(len(spec.audience_languages(name)) for name in spec.audiences)
    count = len(campaign.communes) * versions * len(spec.formats)
    photos = sum(1 for commune in campaign.communes if commune.photos)
    from_photos = f", {photos} commune(s) rendered from their photos" if photos and spec.photos is not None else ""
    return (
        f"campaign '{spec.name}': {len(campaign.communes)} communes x {versions} audience-languages"
        f" x {len(spec.formats)} formats = {count} images{from_photos}"
    )


def _lint(campaign: Campaign) -> int:
    """Print the campaign's bias and stereotype findings; 1 if there is any."""
    from pipelines.campaign_lint import lint_campaign

    report = lint_campaign(campaign)
    for finding in report.findings:
        console.print(f"    {finding.message()}", highlight=False, markup=False)
    if report.from_templates:
        console.print(f"    ... and {report.from_templates} job(s) holding those template terms", highlight=False)
    if report.held or report.for_review:
        console.print(
            f"    {report.held} job(s) held back, {report.for_review} rendered and marked for review", highlight=False
        )
    return EXIT_FINDING if report.findings else EXIT_OK


def _check_file(path: Path) -> int:
    """Validate one file and print a line describing it (a campaign: and its review findings)."""
    from pipelines.campaign import load_campaign
    from pipelines.charter import load_charter
    from pipelines.communes import load_communes
    from pipelines.config_files import read_yaml_mapping

    if path.suffix.lower() == ".csv":
        communes = load_communes(path)
        departments = len({c.department for c in communes})
        console.print(f"ok  {path}: communes: {len(communes)} communes in {departments} departments", highlight=False)
        return EXIT_OK
    if path.is_dir() or read_yaml_mapping(path, CampaignError).get("palette") is not None:
        charter = load_charter(path)
        spec = charter.spec
        description = f"charter '{spec.name}': {len(spec.palette)} colours, 3 logos, font {charter.font.name}"
        console.print(f"ok  {path}: {description}", highlight=False)
        return EXIT_OK
    campaign = load_campaign(path)
    console.print(f"ok  {path}: {_describe_campaign(campaign)}", highlight=False)
    return _lint(campaign)


def _check(files: Sequence[Path]) -> int:
    """0: every file valid, no review finding; 1: valid, with review findings; 2: a file is invalid."""
    status = 0
    for path in files:
        try:
            status = max(status, _check_file(path))
        except VisuelsError as exc:
            errors.print(f"error: {exc}", highlight=False, markup=False)
            status = max(status, exc.exit_code)
    return status


def _option_error(source: str, exc: ValidationError) -> VisuelsError:
    """A validation error of a command line value, named as its option: ``--max-communes``."""
    location, message = first_problem(exc)
    return VisuelsError(source, "--" + str(location[-1]).replace("_", "-"), message)


def _run_settings(args: argparse.Namespace) -> RunSettings:
    try:
        return RunSettings(
            output_dir=args.output_dir,
            batch_size=args.batch_size or 0,
            device=args.device,
            dtype=args.dtype,
            cpu_workers=args.cpu_workers or 0,
            compile=args.compile,
        )
    except ValidationError as exc:
        raise _option_error(f"visuels {args.command}", exc) from None


def _names(option: str | None) -> list[str]:
    """A comma-separated option's names."""
    return [name.strip() for name in option.split(",") if name.strip()] if option else []


def _render_request(args: argparse.Namespace, run: RunSettings) -> RenderRequest:
    communes = _names(args.communes)
    try:
        return RenderRequest(
            campaign=str(args.campaign),
            selection=Selection(communes=communes, max_communes=args.max_communes),
            overrides=Overrides(model=args.model),
            run=run,
        )
    except ValidationError as exc:
        raise _option_error(str(args.campaign), exc) from None


def _render(request: RenderRequest, render: RenderFlow, verbose: bool) -> int:
    from pipelines.render import plan_render

    # Check everything before starting Prefect: bad input fails in a second, writing nothing.
    output_root = Path(request.run.output_dir).resolve()
    plan = plan_render(request.campaign, output_root, request.selection, request.overrides, request.run)
    console.print(
        f"[bold]{plan.campaign_name}[/bold]: {len(plan.jobs)} images, {len(plan.pending)} to render"
        f" with {plan.setup.model_description}"
    )
    if not plan.pending:
        # Every file is there, recorded: no flow run, no model, no rewritten report.
        console.print(f"[green]done[/green]: nothing to render, all {len(plan.jobs)} images are up to date")
        return EXIT_OK
    started = time.perf_counter()
    with _progress_bar(plan, output_root), _prefect_console(verbose):
        summary = render(request)
    elapsed = time.perf_counter() - started
    console.print(
        f"[green]done[/green] in {elapsed:.1f} s: {summary.rendered} rendered, "
        f"{summary.jobs - summary.rendered} already up to date, "
        f"{summary.failed_compliance} not compliant with the charter"
    )
    console.print(f"images in [bold]{summary.output_dir}[/bold]", highlight=False)
    if summary.report:
        console.print(f"compliance report: {summary.report}", highlight=False)
    return EXIT_OK


@contextmanager
def _prefect_console(verbose: bool) -> Iterator[None]:
    """Prefect's console quiet while the flow runs, but for critical messages (set before Prefect
    is imported, and for this call only): the progress bar says what happens, a failure ends in
    one line of ours, and the run's logs still reach the server in full (`-v` shows them here)."""
    variable = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"
    before = os.environ.get(variable)
    if not verbose and before is None:
        os.environ[variable] = "CRITICAL"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(variable, None)


@contextmanager
def _progress_bar(plan: RenderPlan, output_root: Path) -> Iterator[None]:
    """A bar of the plan's pictures, counted in the record as they are written there: it shows the
    same whether this process, render workers or shards make them. One light query a second."""
    from pipelines import manifest
    from pipelines.database import Database, database_url
    from pipelines.render import rendered_since_plan

    columns = (
        TextColumn("rendering"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("images"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    pending = {job.key for job in plan.pending}
    database = Database(database_url(output_root))

    def recorded() -> int:
        return len(pending & manifest.recorded_sizes(database, plan.campaign_slug).keys())

    already = recorded()  # recorded, but their file was missing: rendered again, counted when recorded again
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("rendering", total=len(pending))
        stop = threading.Event()

        def count() -> None:
            while not stop.wait(PROGRESS_EVERY_S):
                try:
                    bar.update(task, completed=recorded() - already)
                except VisuelsError:
                    continue  # the record is busy: the next look will tell

        watcher = threading.Thread(target=count, name="progress", daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()
            database.close()
        bar.update(task, completed=len(rendered_since_plan(plan, output_root)))  # exact, files included


def _database_url(option: str | None, near: Path | None = None) -> str:
    """The database ``--database`` names; else ``$VISUELS_DATABASE_URL``; else the ``visuels.sqlite``
    of the output folder ``near`` (a file) lies in, whatever ``--output-dir`` made it; else ./outputs'."""
    from pipelines.database import DATABASE_FILE, DatabaseOptionError, database_url, is_missing, url_option

    if option:
        return url_option(option)
    if near is not None and not os.environ.get("VISUELS_DATABASE_URL"):
        for folder in near.resolve().parents:
            if (folder / DATABASE_FILE).is_file():
                return f"sqlite:///{folder / DATABASE_FILE}"
    url = database_url(Path("outputs"))
    if is_missing(url):
        looked = f"in the folders above {near} and " if near is not None else ""
        raise DatabaseOptionError(
            near or "outputs", "--database", f"no {DATABASE_FILE} found {looked}in ./outputs: give --database"
        )
    return url


def _record_near(path: Path) -> str | None:
    """The record a file would be in, as ``_database_url`` finds it; None where there is none (a
    picture that reached someone outside the project: it is judged from its own marks)."""
    from pipelines.database import DatabaseOptionError

    try:
        return _database_url(None, path)
    except DatabaseOptionError:
        return None


def _database(option: str | None, near: Path | None = None) -> Database:
    """The database of record for a command; it must exist already."""
    from pipelines.database import Database

    return Database(_database_url(option, near), must_exist=True)


def _output_root(database: Database) -> Path:
    """Where the files this database records are (their ledger names are relative to it)."""
    from pipelines.database import output_root_of

    return output_root_of(database.url, Path("outputs"))


def _verify(
    files: Sequence[Path], as_json: bool, database_option: str | None, charter_path: Path, allow_untrusted: bool
) -> int:
    """0: every layer of every file is there and valid; 1: some layer is not; 2: a file is unreadable."""
    import json

    from pipelines.charter import load_charter
    from pipelines.marking.keys import TRUST_ANCHORS, keys_dir
    from pipelines.marking.verify import verify_file

    charter = load_charter(charter_path)
    databases: dict[str, Database | None] = {}  # each file is checked against the record of its own output folder
    reports = []
    try:
        for path in files:
            url = _database_url(database_option, path) if database_option else _record_near(path)
            if url not in databases:
                databases[url] = _database(url) if url else None
            anchors = keys_dir() / TRUST_ANCHORS
            reports.append(verify_file(path, charter, databases[url], anchors, allow_untrusted))
    finally:
        for database in databases.values():
            if database is not None:
                database.close()
    if as_json:
        print(json.dumps([report.model_dump() for report in reports], indent=2, ensure_ascii=False))
    for report in reports:
        if report.error:
            errors.print(f"error: {report.file}: {report.error}", highlight=False, markup=False)
        elif not as_json:
            record = report.ledger_record
            where = (
                f"ledger #{record['id']} by {report.found_by} (job {record['job_key'][:12]})"
                if record
                else "no ledger record"
                if report.record_searched
                else "no record found: judged from its marks alone"
            )
            if report.original:
                original = report.original
                where += (
                    f"; made from {original['file']} (ledger #{original['ledger_id']},"
                    f" job {original['job_key'][:12]}, sha256 {original['sha256'][:12]})"
                )
            geometry = f" (found {report.watermark_geometry})" if report.watermark_geometry else ""
            console.print(
                f"{'ok ' if report.ok else 'BAD'} {report.file}: label {'yes' if report.label_seen else 'no'}, "
                f"watermark {report.watermark or 'none'}{geometry}, XMP {'yes' if report.xmp_source_type else 'no'}, "
                f"C2PA {report.c2pa}; {where}",
                highlight=False,
                markup=False,
            )
            for name, check in report.checks.items():
                if not check.passed:
                    console.print(f"    {name}: {check.detail}", highlight=False, markup=False)
    if any(report.error for report in reports):
        return EXIT_BAD_INPUT
    return EXIT_OK if all(report.ok for report in reports) else EXIT_FINDING


def _finalize_targets(files: Sequence[Path], output: Path | None) -> list[Path | None]:
    if output is None:
        return [None] * len(files)
    # A folder: several files, an existing folder, or a name without a picture suffix.
    if len(files) > 1 or output.is_dir() or not output.suffix:
        if output.exists() and not output.is_dir():
            raise VisuelsError(output, "--output", "with several files, OUT must be a folder")
        return [output / path.name for path in files]
    return [output]


def _finalize(args: argparse.Namespace) -> int:
    """0: every file marked and within the charter; 1: marked, but some charter check failed; 2: bad input."""
    from pipelines.charter import load_charter
    from pipelines.derivatives import finalize_file
    from pipelines.marking.keys import signing_files

    charter = load_charter(args.charter)
    signing = signing_files()
    targets = _finalize_targets(args.files, args.output)
    database = _database(args.database, args.original or args.files[0])
    status = 0
    try:
        for path, target in zip(args.files, targets, strict=True):
            done = finalize_file(path, args.original, target, charter, database, signing, _output_root(database))
            _print_derivative(path, done)
            if not done.check.passed:
                status = EXIT_FINDING
    finally:
        database.close()
    return status


def _print_derivative(source: Path, done: Derivative) -> None:
    check = done.check
    state = "already marked" if done.already_done else "marked"
    where = f"changed {check.changed_share:.1%} of the pixels" + (
        f" in {check.changed_box}" if check.changed_box else ""
    )
    verdict = "charter ok" if check.passed else "charter: " + "; ".join(check.reasons)
    console.print(
        f"{'ok ' if check.passed else 'CHECK'} {source} -> {done.file}: {state} (ledger #{done.ledger_id},"
        f" from {done.original.file} #{done.original.ledger_id}); {where}; {verdict}",
        highlight=False,
        markup=False,
    )


def _retouch(args: argparse.Namespace) -> int:
    """Variants of an output, each marked and recorded; 1 if one fails a charter check."""
    from pipelines.charter import load_charter
    from pipelines.derivatives import file_type_of, find_original, mark_derivative
    from pipelines.devices import choose_device, choose_dtype
    from pipelines.image_input import read_mask, read_picture
    from pipelines.marking.keys import signing_files
    from pipelines.model_host import ModelHost
    from pipelines.retouch import RetouchSettings, retouch, retouch_edit, retouch_model

    try:
        settings = RetouchSettings(
            prompt=args.prompt, mode=args.mode, variants=args.variants, strength=args.strength, seed=args.seed
        )
    except ValidationError as exc:
        location, message = first_problem(exc)
        raise VisuelsError("visuels retouch", "--" + str(location[-1]), message) from None
    charter = load_charter(args.charter)
    signing = signing_files()
    database = _database(args.database, args.image)
    status = 0
    try:
        original = find_original(database, args.image, _output_root(database), "IMAGE")
        picture = read_picture(original.path, "IMAGE")
        mask = read_mask(args.mask, picture.size, "--mask") if args.mask else None
        model = retouch_model(database, original, args.model, args.lora)
        file_type_of(original.path)  # a format the variants can be written in, before any work
        device = choose_device(args.device)
        console.print(f"{settings.variants} variant(s) of {args.image} with {model.description} on {device}")
        variants = retouch(ModelHost(device), model, picture, mask, settings, choose_dtype(device))
        folder = args.output_dir or args.image.parent
        for number, variant in enumerate(variants):
            target = folder / f"{args.image.stem}-retouch-{settings.seed + number}{original.path.suffix}"
            edit = retouch_edit(model, settings, number)
            done = mark_derivative(variant, original, target, edit, charter, database, signing, _output_root(database))
            _print_derivative(args.image, done)
            status = status or (EXIT_OK if done.check.passed else EXIT_FINDING)
    finally:
        database.close()
    return status


def _studio(args: argparse.Namespace, reviews: ReviewBackend | None) -> int:
    import uvicorn

    from pipelines.charter import load_charter
    from pipelines.database import Database, database_url
    from pipelines.marking.keys import signing_files
    from pipelines.studio.app import Studio, create_app
    from pipelines.web_guard import is_loopback, new_token

    output_root = args.output_dir.resolve()
    studio = Studio(
        output_root=output_root,
        database=Database(database_url(output_root)),
        charter=load_charter(args.charter),
        signing=signing_files(),
        device=args.device,
        reviews=reviews,
    )
    every_address = args.host in ("0.0.0.0", "::")
    hosts = [*args.allow_host, *([] if is_loopback(args.host) or every_address else [args.host])]
    # Beyond loopback, other people's browsers can reach it: only those given the token get in.
    token = None if is_loopback(args.host) else new_token()
    address = f"http://{'127.0.0.1' if every_address else args.host}:{args.port}"
    console.print(
        f"studio on [bold]{address}{f'/?token={token}' if token else ''}[/bold] for {output_root} (Ctrl-C to stop)",
        highlight=False,
    )
    try:
        uvicorn.run(create_app(studio, hosts, token), host=args.host, port=args.port, log_level="warning")
    finally:
        studio.database.close()
    return EXIT_OK


def _doctor(output_root: Path, campaign: Path | None) -> int:
    from pipelines.doctor import diagnose

    findings = diagnose(output_root, campaign)
    for finding in findings:
        mark = "[green]ok[/green]     " if finding.ok else "[red]missing[/red]"
        console.print(f"{mark} {finding.topic}: ", end="")
        console.print(finding.text, highlight=False, markup=False)
    return EXIT_OK if all(finding.ok for finding in findings) else EXIT_FINDING


def _keys_init(folder: Path | None) -> int:
    from pipelines.marking.keys import init_local_chain, keys_dir

    files = init_local_chain(folder or keys_dir())
    console.print(f"local signing chain in {files.chain.parent} (keys mode 0600); trust anchor: {files.trust_anchors}")
    return EXIT_OK


def _ledger_verify(database_option: str | None) -> int:
    from pipelines.database import display_url
    from pipelines.marking.checkpoints import checkpoint_problems
    from pipelines.marking.keys import SIGNER_KEY, keys_dir, signing_files
    from pipelines.marking.ledger import verify_chain

    database = _database(database_option)
    try:
        rows, broken = verify_chain(database)
        signing = signing_files() if (keys_dir() / SIGNER_KEY).exists() else None
        problems = checkpoint_problems(database, _output_root(database), signing)
    finally:
        database.close()
    where = display_url(database.url)
    if broken is not None:
        problems.insert(0, f"row {broken}: hash chain broken (edited or deleted rows)")
    for problem in problems:
        errors.print(f"error: {where}: {problem}", highlight=False, markup=False)
    if problems:
        return EXIT_FINDING
    console.print(f"ok  {where}: {rows} rows, hash chain intact, as its signed checkpoints say", highlight=False)
    return EXIT_OK


def _train(args: argparse.Namespace, train: Trainer) -> int:
    from pydantic import ValidationError

    from pipelines.config_files import field_path, first_problem
    from pipelines.training.trainer import TrainingConfig

    options = {name: getattr(args, name) for name in TRAINING_OPTIONS if getattr(args, name) is not None}
    from pipelines.model_reference import parse_model_option
    from pipelines.training.run import check_training_inputs

    try:
        config = TrainingConfig(**options)
    except ValidationError as exc:
        location, message = first_problem(exc)
        option = "--" + field_path(location).replace("_", "-")
        raise VisuelsError("visuels train", option, message) from None
    # Refuse bad input before Prefect starts: no traceback, no run folder.
    root = Path(args.lora_dir) if args.lora_dir else None
    check_training_inputs(args.charter, parse_model_option(args.base), config, args.resume, root)
    summary = train(str(args.charter), args.base, options, args.resume or "", args.lora_dir or "")
    console.print(
        f"[green]done[/green]: {summary.steps} steps, loss {summary.first_loss:.4f} -> {summary.last_loss:.4f}"
        f" ({summary.loss_drop:.1%} lower); colour distance to the references"
        f" {summary.colour_distance_without_lora:.1f} -> {summary.colour_distance_with_lora:.1f}"
    )
    console.print(f"LoRA in [bold]{summary.folder}[/bold]", highlight=False)
    return EXIT_OK


def _ensure_demo_keys() -> None:
    """The demo signs with a local chain, made on first use."""
    from pipelines.marking.keys import ensure_local_chain, keys_dir

    if ensure_local_chain(keys_dir()):
        console.print(f"made a local signing chain in {keys_dir()} (for the demo; see `visuels keys init`)")


def main(
    argv: Sequence[str] | None = None,
    render: RenderFlow | None = None,
    train: Trainer | None = None,
    reviews: ReviewBackend | None = None,
) -> int:
    """Run the CLI; return the exit code."""
    # No network at run time unless the user asks for it (HF_HUB_OFFLINE=0 for hub models).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # Prefect's usage telemetry: no network here, and on a fresh embedded SQLite database its
    # first write races the migrations and prints a "database is locked" traceback.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect's temporary server gets 20 s to start by default: too few on a busy machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(SERVER_START_TIMEOUT_S))
    parser, command_parsers = _build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's own parser, with its own usage line
        command_parsers[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        if args.command == "check":
            return _check(args.files)
        if args.command == "keys":
            return _keys_init(args.dir)
        if args.command == "ledger":
            return _ledger_verify(args.database)
        if args.command == "verify":
            return _verify(args.files, args.json, args.database, args.charter, args.allow_untrusted)
        if args.command == "finalize":
            return _finalize(args)
        if args.command == "doctor":
            return _doctor(args.output_dir, args.campaign)
        if args.command == "studio":
            return _studio(args, reviews)
        if args.command == "retouch":
            quiet_third_party_logs()
            return _retouch(args)
        quiet_third_party_logs()
        if args.command == "train":
            if train is None:
                raise VisuelsError("visuels", "train", "training needs the Prefect flow: run the `visuels` command")
            return _train(args, train)
        if render is None:
            raise VisuelsError("visuels", args.command, "rendering needs the Prefect flow: run the `visuels` command")
        run = _run_settings(args)
        if args.command == "demo":
            _ensure_demo_keys()
            request = RenderRequest(
                campaign=str(SAMPLE_CAMPAIGN),
                selection=Selection(communes=_names(args.communes) or DEMO_COMMUNES),
                overrides=Overrides(model="demo"),
                run=run,
            )
        else:
            request = _render_request(args, run)
        return _render(request, render, args.verbose)
    except VisuelsError as exc:
        errors.print(f"error: {exc}", highlight=False, markup=False)
        return exc.exit_code
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
