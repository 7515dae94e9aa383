"""``visuels render`` and ``visuels demo``: check the plan here, then run the render flow with a
progress bar of the pictures recorded."""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from visuels._internal.i18n import Words, user_language, words
from visuels.cli.console import console, option_error
from visuels.config import sample_campaign, sample_template_campaign
from visuels.errors import EXIT_OK, VisuelsError
from visuels.planning.request import Overrides, RenderRequest, RunSettings, Selection

if TYPE_CHECKING:  # planning and rendering import the model libraries: too slow for `visuels check`
    from visuels.planning.plan import RenderPlan
    from visuels.review.publish import RenderSummary

DEMO_COMMUNES = ["Sète", "Castelnau-d'Estrétefonds", "Collioure"]
PROGRESS_EVERY_S = 1.0  # how often the progress bar looks at the record
# The render request's selection fields (the run form's names) and the options that fill them here.
SELECTION_OPTIONS = {
    "selection.communes": "--communes",
    "selection.audiences": "--audiences",
    "selection.formats": "--formats",
}

RenderFlow = Callable[[RenderRequest], "RenderSummary"]


def run_settings(args: argparse.Namespace) -> RunSettings:
    from visuels.models.devices import check_device

    check_device(args.device)  # before anything is planned: the run would fail at its first batch
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
        raise option_error(f"visuels {args.command}", exc) from None


def render_request(args: argparse.Namespace, run: RunSettings) -> RenderRequest:
    try:
        return RenderRequest(
            campaign=str(args.campaign),
            selection=_selection(args, args.communes or [], args.max_communes),
            overrides=Overrides(model=args.model),
            run=run,
        )
    except ValidationError as exc:
        raise option_error(str(args.campaign), exc) from None


def _selection(args: argparse.Namespace, communes: list[str], max_communes: int | None = None) -> Selection:
    """The pictures ``--communes``, ``--audiences`` and ``--formats`` choose (all when not given)."""
    return Selection(
        communes=communes,
        max_communes=max_communes,
        audiences=args.audiences or [],
        formats=args.formats or [],
    )


def demo_requests(args: argparse.Namespace) -> list[RenderRequest]:
    """The two sample campaigns (built-in layout, then the charter's templates) on the demo model,
    for some of their communes (all three by default)."""
    try:
        selection = _selection(args, args.communes or DEMO_COMMUNES)
    except ValidationError as exc:
        raise option_error("visuels demo", exc) from None
    return [
        RenderRequest(
            campaign=str(campaign), selection=selection, overrides=Overrides(model="demo"), run=run_settings(args)
        )
        for campaign in (sample_campaign(), sample_template_campaign())
    ]


def _plan(
    campaign: str | Path,
    output_root: Path,
    selection: Selection,
    overrides: Overrides | None = None,
    run: RunSettings | None = None,
) -> RenderPlan:
    """``plan_render`` for a command: a selection it refuses is said of the option that asked for it
    (``--communes``), not of the run form's field."""
    from visuels.planning.plan import plan_render

    try:
        return plan_render(campaign, output_root, selection, overrides, run)
    except VisuelsError as exc:
        field = exc.field or ""
        option = next((option for name, option in SELECTION_OPTIONS.items() if field.startswith(name)), None)
        if option is None:
            raise
        raise type(exc)(exc.file, option, exc.text) from None


def render(request: RenderRequest, render: RenderFlow, verbose: bool) -> int:
    # Check everything before starting Prefect: bad input fails in a second, writing nothing.
    output_root = Path(request.run.output_dir).resolve()
    plan = _plan(request.campaign, output_root, request.selection, request.overrides, request.run)
    t = words(user_language())
    planned = t.plural(
        "{campaign}: 1 image, {pending} to render with {model}",
        "{campaign}: {count} images, {pending} to render with {model}",
        len(plan.jobs),
        campaign=f"[bold]{escape(plan.campaign_name)}[/bold]",
        pending=len(plan.pending),
        model=escape(t(plan.setup.model_description)),  # the demo model's in the reader's words, a folder's as named
    )
    console.print(planned)
    _say_saved_over(plan, output_root, t)
    if not plan.pending:
        from visuels.review.publish import publish_if_behind

        # Every file is there, recorded: no flow run, no model; the report is written again only
        # if the manifest is behind the record or this plan.
        reports = publish_if_behind(plan, output_root)
        console.print(
            t.plural(
                "done: nothing to render, its 1 picture is up to date",
                "done: nothing to render, all {count} images are up to date",
                len(plan.jobs),
            ),
            style="green",
        )
        _say_where(output_root / plan.campaign_slug, t, reports.html if reports and reports.rows else None)
        return EXIT_OK
    started = time.perf_counter()
    with _progress_bar(plan, output_root, t), _prefect_console(verbose):
        summary = render(request)
    elapsed = time.perf_counter() - started
    done = t(
        "done in {seconds} s: {rendered}, {up_to_date} already up to date, {failed} with the charter",
        seconds=round(elapsed, 1),  # written as the reader's language writes it (9.2, 9,2)
        rendered=t.plural("1 rendered", "{count} rendered", summary.rendered),
        up_to_date=summary.jobs - summary.rendered,
        failed=t.plural("1 not compliant", "{count} not compliant", summary.failed_compliance),
    )
    console.print(done, style="green", highlight=False, markup=False)
    _say_where(Path(summary.output_dir), t, summary.report)
    if summary.review:
        waiting = t(
            "waiting for a designer's approval (review run {name}): approve them in the studio,"
            " `visuels studio`, while `make serve` runs",
            name=summary.review,
        )
        console.print(waiting, highlight=False, markup=False)
        if summary.review_earlier:
            earlier = t.plural(
                "the review also asks about 1 picture an earlier run exported that no review had asked about",
                "the review also asks about {count} pictures earlier runs exported that no review had asked about",
                summary.review_earlier,
            )
            console.print(earlier, highlight=False, markup=False)
    elif summary.review_not_sent:
        unsent = t("not sent for review: this Prefect server has no review deployment (`make serve` registers it)")
        console.print(unsent, highlight=False, markup=False)
    return EXIT_OK


def report(args: argparse.Namespace) -> int:
    """``visuels report``: write the campaign's report again from its record (after retouches,
    finalized edits or reviews), rendering nothing."""
    from visuels.planning.plan import plan_render
    from visuels.review import kept_edits
    from visuels.review.publish import finish_render

    output_root = Path(args.output_dir).resolve()
    _refuse_a_folder_without_record(args.campaign, output_root)
    plan = plan_render(args.campaign, output_root)
    if len(plan.pending) == len(plan.jobs):  # a report of nothing would stand for one of the campaign
        raise VisuelsError(
            output_root / plan.campaign_slug, None, "no recorded picture of this campaign: render it first"
        )
    reports = finish_render(plan, output_root)
    t = words(user_language())
    said = t(
        "{pictures} reported, {failed} with the charter",
        pictures=t.plural("1 picture", "{count} pictures", len(reports.rows)),
        failed=t.plural("1 not compliant", "{count} not compliant", reports.failed),
    )
    console.print(said, highlight=False, markup=False)
    reported = {row["file"] for row in reports.rows}
    removed = sum(1 for job in plan.pending if job.relative_path in reported)
    if removed:  # recorded, reported from the record, but no longer in the folder at its recorded size
        said = t.plural(
            "1 reported picture is no longer in the folder as it was recorded (removed or changed since):"
            " `visuels render` makes it again",
            "{count} reported pictures are no longer in the folder as they were recorded (removed or changed"
            " since): `visuels render` makes them again",
            removed,
        )
        console.print(said, highlight=False, markup=False)
    if len(plan.pending) > removed:
        said = t.plural(
            "1 picture of the campaign is not rendered yet: `visuels render` makes it",
            "{count} pictures of the campaign are not rendered yet: `visuels render` makes them",
            len(plan.pending) - removed,
        )
        console.print(said, highlight=False, markup=False)
    if edits := len(kept_edits.waiting(output_root / plan.campaign_slug)):
        said = t.plural(
            "1 edit saved over an output waits to be finalized (kept beside it as NAME-edited.png):"
            " `visuels finalize` it, or use the studio's Finalize page",
            "{count} edits saved over outputs wait to be finalized (kept beside them as NAME-edited.png):"
            " `visuels finalize` them, or use the studio's Finalize page",
            edits,
        )
        console.print(said, highlight=False, markup=False)
    _say_where(output_root / plan.campaign_slug, t, reports.html)
    return EXIT_OK


def baseline(args: argparse.Namespace) -> int:
    """``visuels baseline``: fix the campaign's style baseline again, from its recorded pictures (of
    some communes), and write its report against it."""
    from visuels.review.publish import fix_campaign_baseline

    output_root = Path(args.output_dir).resolve()
    try:
        selection = Selection(communes=args.communes or [])
    except ValidationError as exc:
        raise option_error(str(args.campaign), exc) from None
    _refuse_a_folder_without_record(args.campaign, output_root)
    plan = _plan(args.campaign, output_root, selection)
    fixed, reports = fix_campaign_baseline(plan, output_root)
    off_tone = sum(1 for row in reports.rows if row["off_style"] == "yes")
    t = words(user_language())
    said = t(
        "style baseline of {campaign} fixed from {pictures}; against it, {off_tone}",
        campaign=plan.campaign_name,
        pictures=t.plural("1 picture", "{count} pictures", fixed.pictures),
        off_tone=t.plural(
            "1 of the campaign's {total} pictures is off-tone",
            "{count} of the campaign's {total} pictures are off-tone",
            off_tone,
            total=len(reports.rows),
        ),
    )
    console.print(said, highlight=False, markup=False)
    _say_where(output_root / plan.campaign_slug, t, reports.html)
    return EXIT_OK


def _refuse_a_folder_without_record(campaign: str | Path, output_root: Path) -> None:
    """``report`` and ``baseline`` read what renders recorded: a folder none rendered into is
    refused before a record is made there (the campaign's own mistakes said first)."""
    from visuels.inputs.campaign import load_campaign
    from visuels.record.database import database_url, is_missing

    if is_missing(database_url(output_root)):
        load_campaign(campaign)  # read again by the plan otherwise: here only to say its mistakes first
        raise VisuelsError(
            output_root,
            "--output-dir",
            "nothing was rendered here (no visuels.sqlite): give the output folder the campaign was rendered into",
        )


def _say_where(campaign_folder: Path, t: Words, report: Path | None = None) -> None:
    """Where the pictures and the report are, after every render: the first or an up-to-date one."""
    console.print(t("images in {folder}", folder=campaign_folder), highlight=False, markup=False)
    report = report or (campaign_folder / "report.html" if (campaign_folder / "report.html").is_file() else None)
    if report:
        console.print(t("compliance report: {path}", path=report), highlight=False, markup=False)


def _say_saved_over(plan: RenderPlan, output_root: Path, t: Words) -> None:
    """Before rendering: the outputs to be made again over someone's work saved in their place,
    which export keeps beside them (``keep_an_edit_aside``)."""
    from visuels.engine.export import EDIT_KEPT_AS, saved_over, watermark_payload

    # A stat per pending job (a region's first night: 100,000), a manifest read only where a file is.
    count = sum(1 for job in plan.pending if saved_over(output_root / job.relative_path, watermark_payload(job)))
    if count:
        kept = EDIT_KEPT_AS.format(stem="NAME", number="", suffix=".png")
        said = t.plural(
            "1 output was changed since it was rendered (saved over): it is kept beside it as {kept} and made"
            " again; `visuels finalize` the edit to publish it",
            "{count} outputs were changed since they were rendered (saved over): each is kept beside it as {kept}"
            " and made again; `visuels finalize` the edits to publish them",
            count,
            kept=kept,
        )
        console.print(said, highlight=False, markup=False)


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
def _progress_bar(plan: RenderPlan, output_root: Path, t: Words) -> Iterator[None]:
    """A bar of the plan's pictures, counted in the record as they are written there: it shows the
    same whether this process, render workers or shards make them. One light query a second."""
    from visuels.engine.run import rendered_since_plan
    from visuels.record import manifest
    from visuels.record.database import Database, database_url

    columns = (
        TextColumn(escape(t("rendering"))),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(escape(t("images"))),
        TextColumn(escape(t("elapsed"))),
        TimeElapsedColumn(),
        TextColumn(escape(t("· left"))),
        TimeRemainingColumn(elapsed_when_finished=False),
    )
    pending = {job.key for job in plan.pending}
    database = Database(database_url(output_root))

    def recorded() -> int:
        return len(pending & manifest.recorded_files(database, plan.campaign_slug).keys())

    already = recorded()  # recorded, but their file was missing: rendered again, counted when recorded again
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(t("rendering"), total=len(pending))
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


def ensure_demo_keys() -> None:
    """The demo signs with a local chain, made on first use."""
    from visuels.marking.keys import ensure_local_chain, keys_dir

    if ensure_local_chain(keys_dir()):
        made = words(user_language())(
            "made a local signing chain in {folder} (for the demo; see `visuels keys init`)", folder=keys_dir()
        )
        console.print(made, highlight=False, markup=False)
