"""The studio's home and review pages: the paused review runs, a review's pictures as a grid, and
the designer's decision sent back to the run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from visuels._internal.collector import cycles_collected_after
from visuels._internal.i18n import Words, words
from visuels.errors import VisuelsError
from visuels.inputs.yamlfiles import first_problem
from visuels.planning.jobs import KEY_PREFIX_LENGTH
from visuels.postprocess import findings
from visuels.review.decisions import ReviewDecision, count_to_review, pictures_to_review, review_listing
from visuels.studio.pages import describe_output, page_language, with_commune_labels
from visuels.studio.reviews import ReviewRun

if TYPE_CHECKING:
    from visuels.studio.app import Studio

# Pictures a review page shows at once (``?per_page=``: 1 to REVIEW_MOST_PER_PAGE); the others are
# a click away, their decisions kept in the page.
REVIEW_PER_PAGE = 48
REVIEW_MOST_PER_PAGE = 500


def _pictures(run: ReviewRun) -> list[str]:
    """The job keys a review run asks about."""
    return pictures_to_review(Path(run.output_dir), run.batch, run.keys)


@cycles_collected_after()  # a region's review: 106,704 pictures
def review_pictures(run: ReviewRun, t: Words) -> list[dict]:
    """The pictures a review run asks about, as its page's script shows them: those to look at first first."""
    listing = review_listing(Path(run.output_dir), run.campaign_slug, _pictures(run))
    described = with_commune_labels([describe_output({**entry, "job_key": entry["key"]}) for entry in listing.values()])
    return [
        picture
        | {
            "name": name,
            "attention": [reason.said(t) for reason in entry["attention"]],
            "reasons": "; ".join(findings.said(reason, t) for reason in picture["reasons"]),
        }
        for (name, entry), picture in zip(listing.items(), described, strict=True)
    ]


def _review_sizes(runs: list[ReviewRun]) -> list[int]:
    """How many pictures each run asks about: one count a database, none read whole."""
    by_folder: dict[str, dict[str, int]] = {}
    for folder in {run.output_dir for run in runs if not run.keys}:
        try:
            by_folder[folder] = count_to_review(Path(folder), [run.batch for run in runs if run.output_dir == folder])
        except VisuelsError:  # its database unreadable: the home still lists the run, its page says why
            by_folder[folder] = {}
    return [len(run.keys) if run.keys else by_folder[run.output_dir].get(run.batch, 0) for run in runs]


def review_routes(studio: Studio, templates: Jinja2Templates) -> APIRouter:
    """The home page, a review's page, and the decision a review page sends."""
    router = APIRouter()

    def _home(reviews: list[ReviewRun], review_error: str) -> dict:
        return {
            "reviews": [(run, count) for run, count in zip(reviews, _review_sizes(reviews), strict=True)],
            "review_error": review_error,
            "no_server": studio.reviews is None,
            "campaigns": studio.campaigns(),
            "template_sets": {name: list(files) for name, files in studio.charter.templates.items()},
        }

    @router.get("/", response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        reviews, review_error = [], ""
        if studio.reviews is not None:
            try:
                reviews = studio.reviews.paused_runs()
            except Exception as exc:  # no server reachable: retouching still works
                review_error = words(page_language(request))(
                    "Prefect server not reachable ({error})", error=type(exc).__name__
                )
        context = _home(reviews, review_error)
        return templates.TemplateResponse(request, "home.html", context)

    @router.get("/review/{run_id}", response_class=HTMLResponse)
    def review_page(request: Request, run_id: str, per_page: int = REVIEW_PER_PAGE) -> HTMLResponse:
        if studio.reviews is None:  # a page that says so, not an error in JSON
            return templates.TemplateResponse(request, "home.html", _home([], ""), status_code=503)
        run = studio.reviews.run(run_id)
        if run is None:
            raise HTTPException(404, f"no review run {run_id}")
        per_page = min(max(per_page, 1), REVIEW_MOST_PER_PAGE)
        state = studio.review_page_state(run, page_language(request), per_page)
        if (kept := studio.kept_review_page(state)) is not None:
            return HTMLResponse(kept)
        context = {
            "run": run,
            "pictures": review_pictures(run, words(page_language(request))),
            "root_matches": Path(run.output_dir) == studio.output_root,
            "per_page": per_page,
        }
        page = templates.TemplateResponse(request, "review.html", context)
        studio.keep_review_page(state, bytes(page.body))
        return page

    @router.post("/api/review/{run_id}")
    def review_answer(request: Request, run_id: str, answer: dict) -> JSONResponse:
        t = words(page_language(request))
        if studio.reviews is None:
            raise HTTPException(404, "reviews need a Prefect server")
        run = studio.reviews.run(run_id)
        if run is None or not run.paused:
            raise HTTPException(409, t("this review is not waiting for a decision any more"))
        try:
            decision = ReviewDecision(**answer)
        except ValidationError as exc:
            return JSONResponse({"error": first_problem(exc)[1].said(t)}, status_code=422)
        keys = _pictures(run)
        known = {key[:KEY_PREFIX_LENGTH] for key in keys}
        unknown = [code for code in decision.rejected if code not in known]
        if unknown:
            return JSONResponse({"error": t("{code} is not one of this run's files", code=unknown[0])}, status_code=422)
        studio.reviews.resume(run_id, decision)
        return JSONResponse({"rejected": len(decision.rejected), "approved": len(keys) - len(decision.rejected)})

    return router
