"""Python's cycle collector is held off while a whole campaign's records are read and worked on
(the plan, the report, a review's listing and page): at a region's scale it walked millions of
records again and again, half of those steps' time (benchmarks/RESULTS.md)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from visuels._internal.collector import MANY_OBJECTS, cycles_collected_after

from tests.helpers import SAMPLE_CHARTER_DIR, rendered_campaign_file


def test_held_off_inside_running_again_after() -> None:
    assert gc.isenabled()
    with cycles_collected_after():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_outermost_block_starts_it_again_even_after_a_failure() -> None:
    with pytest.raises(ValueError), cycles_collected_after():
        with cycles_collected_after():
            pass
        assert not gc.isenabled()  # the inner block found it off: left off
        raise ValueError
    assert gc.isenabled()


def test_what_a_large_block_made_is_walked_once_after_it() -> None:
    def full_collections() -> int:
        return gc.get_stats()[2]["collections"]

    gc.collect()  # every count back to 0: nothing else comes due in the test
    before = full_collections()
    with cycles_collected_after():
        few = [[] for _ in range(1000)]
    assert full_collections() == before  # left to the collector's own time
    with cycles_collected_after():
        many = [[] for _ in range(2 * MANY_OBJECTS)]
    assert full_collections() == before + 1  # walked once, now in the oldest generation
    assert gc.get_count()[0] < 1000
    assert len(few) + len(many) > 0


def test_left_off_when_found_off() -> None:
    gc.disable()
    try:
        with cycles_collected_after():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def collections_inside(functions: list[Callable]) -> Callable[[], list[str]]:
    """Watch the collections Python runs by itself, with thresholds that make one run at nearly every
    allocation: the names of ``functions`` each collection found running."""
    bodies = {getattr(function, "__wrapped__", function).__code__ for function in functions}
    found: list[str] = []

    def seen(phase: str, info: dict) -> None:
        frame = sys._getframe(1)
        while phase == "start" and frame is not None:
            if frame.f_code in bodies:
                found.append(frame.f_code.co_name)
                return
            frame = frame.f_back

    gc.callbacks.append(seen)
    return lambda: found


@pytest.fixture
def low_thresholds() -> Iterator[None]:
    thresholds, callbacks = gc.get_threshold(), list(gc.callbacks)
    gc.set_threshold(1, 1, 1)
    try:
        yield
    finally:
        gc.callbacks[:] = callbacks
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("low_thresholds")
def test_a_campaigns_plan_jobs_report_and_review_run_without_collections(
    rendered_copy: tuple[Path, str, list[str], list[str]],
) -> None:
    from visuels._internal.i18n import words
    from visuels.inputs.campaign import load_campaign
    from visuels.inputs.charter import load_charter
    from visuels.models.reference import describe_model
    from visuels.planning.jobs import expand_jobs
    from visuels.planning.plan import plan_render
    from visuels.record import manifest
    from visuels.record.database import Database, database_url
    from visuels.review.decisions import review_listing
    from visuels.review.report import write_reports
    from visuels.studio.reviewing import review_pictures
    from visuels.studio.reviews import ReviewRun

    out, slug, _files, keys = rendered_copy
    database = Database(database_url(out))
    charter = load_charter(SAMPLE_CHARTER_DIR)
    run = ReviewRun(id="r", name="r", campaign_slug=slug, keys=keys, output_dir=str(out), paused=True, state="Paused")
    campaign = rendered_campaign_file(out)
    loaded = load_campaign(campaign)
    model = describe_model(loaded.model, source=str(campaign))
    watched = [plan_render, expand_jobs, manifest.entries, review_listing, review_pictures, write_reports]
    inside = collections_inside(watched)
    plan = plan_render(campaign, out)
    expand_jobs(loaded, model, "auto")  # as `visuels check` does
    manifest.entries(database, slug)
    review_listing(out, slug, keys)
    review_pictures(run, words("en"))
    write_reports(database, out, plan, charter)
    assert inside() == []

    def allocating() -> list[list]:  # no block: collected as usual, and the watch sees it
        return [[] for _ in range(100)]

    seen = collections_inside([allocating])
    allocating()
    assert seen() and seen()[0] == "allocating"
    database.close()
