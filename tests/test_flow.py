"""A real Prefect flow run on the demo model: 2 communes x 2 formats, then an incremental re-run."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from uuid import uuid4

import httpx
import pytest
import visuels.models.host
from PIL import Image
from prefect import flow
from prefect.client.schemas.objects import Artifact
from prefect.exceptions import PrefectHTTPStatusError
from sqlalchemy import func, select
from visuels.flows.render_campaign import render_campaign
from visuels.record.database import Database, database_url, review_pictures_table
from visuels.review.decisions import pictures_to_review

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def prefect_backend() -> Iterator[None]:
    """One temporary Prefect server and database for the flow tests (starting one takes seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def newest_artifact(key: str) -> Artifact:
    """The newest artifact with ``key`` (Artifact.get in Prefect 3.8 sends an invalid query)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
            offset=0,
        )
    assert found, f"no artifact {key}"
    return found[0]


def published_table(key: str) -> list[dict]:
    return json.loads(newest_artifact(key).data)


def published_markdown(key: str) -> str:
    return str(newest_artifact(key).data)


def test_flow_renders_then_skips_what_is_done(
    make_campaign: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = make_campaign()  # Sète and Castelnau-d'Estrétefonds x residents x square and story
    out_dir = tmp_path / "outputs"

    summary = render_campaign(campaign=str(campaign), run={"output_dir": str(out_dir), "batch_size": 2})

    assert (summary.jobs, summary.rendered) == (4, 4)
    files = sorted(path for path in out_dir.rglob("*.png") if "edges" not in path.parts)
    assert len(files) == 4
    folders = {path.relative_to(out_dir / "test-campagne").parts[:2] for path in files}
    assert folders == {
        ("sete", "instagram_square"),
        ("sete", "story"),
        ("castelnau-d-estretefonds", "instagram_square"),
        ("castelnau-d-estretefonds", "story"),
    }
    for path in files:
        with Image.open(path) as image:
            assert image.size in {(1080, 1080), (1080, 1920)}
    manifest = json.loads((out_dir / "test-campagne" / "manifest.json").read_text(encoding="utf-8"))
    assert {entry["file"] for entry in manifest["files"].values()} == {str(path.relative_to(out_dir)) for path in files}

    # The compliance report covers every output, with thumbnails; the flow published it too.
    report_csv = (out_dir / "test-campagne" / "report.csv").read_text(encoding="utf-8").splitlines()
    assert len(report_csv) == 1 + 4 and report_csv[0].startswith(
        "verdict,reasons,commune,insee,format,audience,language,file"
    )
    page = (out_dir / "test-campagne" / "report.html").read_text(encoding="utf-8")
    cards = page.split("<h2>", 1)[1]  # past the "review first" thumbnails: the communes and their cards
    assert cards.count("<img ") == 4 and "Castelnau-d&#39;Estrétefonds" in page
    assert len(list((out_dir / "test-campagne" / "thumbnails").glob("*.jpg"))) == 4
    assert summary.report == out_dir / "test-campagne" / "report.html"
    table = published_table("compliance-test-campagne")
    assert list(table[0])[:5] == ["Verdict", "Raisons", "Commune", "Format", "Public"]  # plain headers, verdict first
    assert sorted(row["Commune"] for row in table) == ["Castelnau-d'Estrétefonds"] * 2 + ["Sète"] * 2
    assert all(row["Verdict"] == "✔ Conforme" for row in table), table
    assert "**4 sur 4 images** · 100 % " in run_progress()  # the bar, updated in place to the end, in French

    # Same keys, same files: a second run renders nothing and never loads the model.
    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded although nothing needed rendering")

    monkeypatch.setattr(visuels.models.host, "load_from_files", no_model)
    again = render_campaign(campaign=str(campaign), run={"output_dir": str(out_dir)})
    assert (again.jobs, again.rendered) == (4, 0)

    # A region's 100,000 pictures are not one table in the Prefect UI: those to review first, said so.
    import visuels.flows.render_campaign as flow_module
    import visuels.review.report as report_module
    from visuels.planning.plan import plan_render

    @flow
    def publish_again() -> None:
        flow_module.report(plan_render(campaign, out_dir), out_dir)

    monkeypatch.setattr(report_module, "TABLE_ROWS", 3)
    publish_again()
    assert len(published_table("compliance-test-campagne")) == 3
    assert "les 3 de ses 4 images à revoir d’abord" in newest_artifact("compliance-test-campagne").description


def test_flow_with_bad_parameters_fails_with_the_input_error(
    make_campaign: Callable[..., Path], tmp_path: Path
) -> None:
    from visuels.errors import CampaignError

    with pytest.raises(CampaignError, match="unknown commune 'Atlantis'"):
        render_campaign(
            campaign=str(make_campaign()),
            selection={"communes": ["Atlantis"]},
            run={"output_dir": str(tmp_path / "o")},
        )
    assert not (tmp_path / "o").exists()
    # In the UI: the run's state says it in one line (and no traceback is logged for bad input).
    state = render_campaign(
        campaign=str(make_campaign()),
        selection={"communes": ["Atlantis"]},
        run={"output_dir": str(tmp_path / "o")},
        return_state=True,
    )
    assert state.is_failed() and state.message.endswith("selection.communes.names[0]: unknown commune 'Atlantis'")


def test_training_flow_publishes_progress_and_results(tmp_path: Path) -> None:
    from visuels.flows.train_lora import train_charter_lora
    from visuels.training.trainer import TrainingConfig

    from tests.helpers import SAMPLE_CHARTER_DIR

    config = TrainingConfig(steps=4, resolution=64, rank=4, batch_size=2, checkpoint_every=2, sample_steps=2)
    summary = train_charter_lora(charter=str(SAMPLE_CHARTER_DIR), config=config, lora_dir=str(tmp_path))
    assert summary.diffusers_file.is_file() and summary.folder.parent == tmp_path / "solane"
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType

    with get_client(sync_client=True) as client:
        markdown = [
            artifact.data
            for artifact in client.read_artifacts(
                artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["markdown"])), limit=20, offset=0
            )
        ]
    assert any("**4 of 4 steps**" in text and "data:image/svg+xml" in text for text in markdown)  # a drawn bar
    assert "loss curve" in published_markdown("lora-training")


def run_progress() -> str:
    """The newest progress artifact's markdown (one per run, rewritten as it goes)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["markdown"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=20,
            offset=0,
        )
    return next(artifact.data for artifact in found if "images**" in (artifact.data or ""))


def wait_until_paused(flow_name: str, pauses: int = 1, timeout: float = 60.0) -> str:
    """The id of the flow run of ``flow_name`` once it has paused ``pauses`` times (polling the API)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), limit=20)
            for run in runs:  # earlier tests' runs of the same flow are there too, finished
                if run.state and run.state.is_paused():
                    history = client.read_flow_run_states(run.id)
                    if sum(1 for state in history if state.is_paused()) >= pauses:
                        return str(run.id)
            time.sleep(0.5)
    raise AssertionError(f"{flow_name} did not pause {pauses} time(s)")


def test_review_waits_for_a_decision_then_applies_it(make_campaign: Callable[..., Path], tmp_path: Path) -> None:
    import threading

    from prefect.flow_runs import resume_flow_run
    from visuels.flows.review_campaign import review_campaign

    out = tmp_path / "outputs"
    summary = render_campaign(campaign=str(make_campaign()), run={"output_dir": str(out)})
    names = sorted(file.split("/", 1)[1] for file in summary.files)
    result: dict = {}
    reviewer = threading.Thread(
        target=lambda: result.update(
            outcome=review_campaign(campaign_slug=summary.campaign, keys=summary.job_keys, output_dir=str(out))
        )
    )
    reviewer.start()
    try:
        run_id = wait_until_paused("review-campaign")
        # What the UI's Resume form sends: codes from a multi-select. The first answer lacks its
        # comment and is asked again, with the form filled in as it was sent.
        code = summary.job_keys[[f.split("/", 1)[1] for f in summary.files].index(names[0])][:12]
        resume_flow_run(run_id, run_input={"rejected": [code], "reviewer": "Léa"})
        wait_until_paused("review-campaign", pauses=2)
        from uuid import UUID

        from prefect.client.orchestration import get_client
        from prefect.input.actions import read_flow_run_input

        with get_client(sync_client=True) as client:
            keyset = client.read_flow_run(run_id).state.state_details.run_input_keyset
        form = read_flow_run_input(keyset["schema"], flow_run_id=UUID(run_id))
        assert form["properties"]["rejected"]["default"] == [code]  # the answer, kept
        assert code in json.dumps(form["properties"]["rejected"])  # a multi-select of this run's codes
        assert "needs a comment" in read_flow_run_input(keyset["description"], flow_run_id=UUID(run_id))
        resume_flow_run(run_id, run_input={"rejected": [code], "comment": "too dark", "reviewer": "Léa"})
    finally:
        reviewer.join(timeout=60)
    outcome = result["outcome"]
    assert outcome.rejected == [names[0]] and outcome.approved == names[1:]
    assert (
        sorted(str(p.relative_to(outcome.approved_folder)) for p in outcome.approved_folder.rglob("*.png"))
        == (names[1:])
    )


def test_nightly_starts_a_reviewed_render_run_per_active_campaign(
    make_campaign: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import visuels.flows.nightly

    make_campaign("a-active.yaml")
    make_campaign("b-paused.yaml", active=False)
    (tmp_path / "c-broken.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    make_campaign("d-refused.yaml")
    make_campaign("e-failing.yaml")
    started: list[dict] = []

    def fake_run_deployment(name: str, parameters: dict, timeout: int) -> SimpleNamespace:
        assert name == "render-campaign/render-campaign" and timeout == 0  # started, not awaited one by one
        if parameters["campaign"].endswith("d-refused.yaml"):
            request = httpx.Request("POST", "http://server/api/deployments/x/create_flow_run")
            response = httpx.Response(409, text="Validation failed for field 'campaign'", request=request)
            raise PrefectHTTPStatusError("409 Conflict", request=request, response=response)
        started.append(parameters)
        return SimpleNamespace(id=uuid4())

    def fake_wait_for_runs(ids: list) -> list[SimpleNamespace]:
        done = SimpleNamespace(name="Completed", message="", is_completed=lambda: True)
        failed = SimpleNamespace(
            name="Failed", message="outputs/x.png: cannot write it: No space", is_completed=lambda: False
        )
        return [SimpleNamespace(state=state) for state in (done, failed)][: len(ids)]

    monkeypatch.setattr(visuels.flows.nightly, "run_deployment", fake_run_deployment)
    monkeypatch.setattr(visuels.flows.nightly, "wait_for_runs", fake_wait_for_runs)
    monkeypatch.setenv("VISUELS_HOME", str(tmp_path.parent))
    monkeypatch.setattr(visuels.flows.nightly, "campaigns_dir", lambda: tmp_path)
    night = visuels.flows.nightly.render_nightly(output_dir="out", shard_size=500, return_state=True)

    assert [parameters["campaign"] for parameters in started] == [
        f"{tmp_path.name}/a-active.yaml",  # relative to the project folder, as in the run form
        f"{tmp_path.name}/e-failing.yaml",
    ]  # the paused campaign is left alone, the broken and the refused ones do not stop the night
    assert started[0]["review"] == "as the campaign says" and started[0]["run"] == {
        "output_dir": "out",
        "shard_size": 500,
    }
    # ...but the night fails, naming each campaign that did not complete with its reason.
    assert night.is_failed()
    assert night.message.startswith("3 campaigns did not complete: c-broken.yaml: ")
    assert "d-refused.yaml: not started: Validation failed for field 'campaign'" in night.message
    assert "e-failing.yaml: Failed: outputs/x.png: cannot write it: No space" in night.message
    assert night.result(raise_on_failure=False) == {
        "a-active.yaml": "Completed",
        "c-broken.yaml": "Not read",
        "d-refused.yaml": "Not started",
        "e-failing.yaml": "Failed",
    }


def test_a_nightly_without_its_campaigns_folder_fails_saying_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import visuels.flows.nightly

    monkeypatch.setenv("VISUELS_HOME", str(tmp_path))  # a project folder with no campaigns/
    night = visuels.flows.nightly.render_nightly(return_state=True)
    assert night.is_failed()
    assert night.message.startswith(f"no campaigns folder at {tmp_path / 'campaigns'}: set VISUELS_HOME")


def test_the_studio_review_resumes_a_real_paused_run(make_campaign: Callable[..., Path], tmp_path: Path) -> None:
    import threading

    from fastapi.testclient import TestClient
    from visuels.flows.review_campaign import review_campaign
    from visuels.flows.studio_reviews import PrefectReviews
    from visuels.inputs.charter import load_charter
    from visuels.marking.keys import signing_files
    from visuels.record.database import Database, database_url
    from visuels.studio.app import Studio, create_app

    from tests.helpers import SAMPLE_CHARTER_DIR

    out = tmp_path / "outputs"
    summary = render_campaign(campaign=str(make_campaign()), run={"output_dir": str(out)})
    result: dict = {}
    reviewer = threading.Thread(
        target=lambda: result.update(
            outcome=review_campaign(campaign_slug=summary.campaign, keys=summary.job_keys, output_dir=str(out))
        )
    )
    reviewer.start()
    database = Database(database_url(out))
    studio = Studio(out, database, load_charter(SAMPLE_CHARTER_DIR), signing_files(), reviews=PrefectReviews())
    try:
        run_id = wait_until_paused("review-campaign")
        with TestClient(create_app(studio), base_url="http://127.0.0.1:7860") as client:
            assert f"/review/{run_id}" in client.get("/").text  # the home page lists the paused run
            code = summary.job_keys[0][:12]
            answer = {"rejected": [code], "comments": {code: "label hidden"}, "reviewer": "Léa"}
            assert client.post(f"/api/review/{run_id}", json=answer).status_code == 200
    finally:
        reviewer.join(timeout=60)
        database.close()
    outcome = result["outcome"]
    rejected_file = summary.files[0].split("/", 1)[1]
    assert outcome.rejected == [rejected_file] and len(outcome.approved) == len(summary.job_keys) - 1


def test_a_known_failure_is_logged_once_without_the_engine_traceback(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from visuels.errors import CampaignError
    from visuels.flows.failures import FLOW_RUN_LOGGER, _KnownFailures, log_known_failures_in_one_line

    log_known_failures_in_one_line()
    log_known_failures_in_one_line()  # installed once
    logger = logging.getLogger(FLOW_RUN_LOGGER)
    assert sum(isinstance(existing, _KnownFailures) for existing in logger.filters) == 1
    for error in (CampaignError("campaign.yaml", "communes", "unknown commune"), RuntimeError("a bug")):
        try:
            raise error
        except Exception:
            logger.error("Engine execution exited with unexpected exception", exc_info=True)
    [kept] = [record for record in caplog.records if record.name == FLOW_RUN_LOGGER]
    assert isinstance(kept.exc_info[1], RuntimeError)  # a bug keeps its traceback


def test_a_run_waits_for_review_as_its_campaign_says_unless_the_run_form_says_otherwise() -> None:
    from visuels.flows.render_campaign import waits_for_review

    assert waits_for_review("as the campaign says", True) and not waits_for_review("as the campaign says", False)
    assert waits_for_review("yes", False) and not waits_for_review("no", True)


def test_a_render_that_asks_for_review_says_which_review_waits(
    make_campaign: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A command-line render of a campaign under review ended on "done" and where the files are:
    nothing said they wait for a designer's approval, nor where to give it, nor that they were not
    sent (no server with the review deployment)."""
    import visuels.flows.render_campaign as render_module
    from visuels.cli import main

    campaign = make_campaign()
    # This server has no review deployment (`make serve` registers it): the render says nothing of one.
    alone = render_campaign(campaign=str(campaign), review="yes", run={"output_dir": str(tmp_path / "alone")})
    assert alone.rendered and alone.review is None and alone.review_not_sent
    database = Database(database_url(tmp_path / "alone"))
    with database.reading() as connection:  # no pictures frozen for a review that was not started
        assert connection.execute(select(func.count()).select_from(review_pictures_table)).scalar() == 0
    database.close()
    assert main(["render", str(campaign), "--output-dir", str(tmp_path / "cli-alone")], render=lambda _: alone) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        "not sent for review: this Prefect server has no review deployment (`make serve` registers it)"
    )
    unasked = render_campaign(campaign=str(campaign), review="no", run={"output_dir": str(tmp_path / "unasked")})
    assert unasked.review is None and not unasked.review_not_sent
    asked: list[dict] = []

    def start_review(name: str, parameters: dict, **options: object) -> SimpleNamespace:
        assert name == "review-campaign/review-campaign" and options["timeout"] == 0
        asked.append(parameters)
        return SimpleNamespace(name="review-quiet-heron", id=uuid4())

    monkeypatch.setattr(render_module, "run_deployment", start_review)
    out = tmp_path / "served"
    summary = render_campaign(campaign=str(campaign), review="yes", run={"output_dir": str(out)})
    # The review run is handed the id its pictures are recorded under, not 100,000 job keys.
    assert summary.review == "review-quiet-heron" and "keys" not in asked[0]
    assert pictures_to_review(out.resolve(), asked[0]["batch"], []) == sorted(summary.job_keys)
    # The command line says it after where the files are.
    assert main(["render", str(campaign), "--output-dir", str(tmp_path / "cli")], render=lambda _: summary) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        "waiting for a designer's approval (review run review-quiet-heron): approve them in the studio,"
        " `visuels studio`, while `make serve` runs"
    )


def test_the_open_reviews_of_a_campaign_are_read_past_the_first_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Open reviews are read a page of runs at a time (200, the server's most; 4 here, so that
    the test makes a few runs, not hundreds): those of later pages ask about pictures too."""
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Paused, Scheduled
    from visuels.flows import review_campaign as reviews
    from visuels.flows.review_campaign import open_reviews, review_campaign

    monkeypatch.setattr(reviews, "RUNS_PER_READ", 4)
    here, out = str(tmp_path / "out"), tmp_path.resolve() / "out"
    rendered = {f"render-{number}" for number in range(2 * reviews.RUNS_PER_READ + 2)}
    asks = {"campaign_slug": "paged", "output_dir": here}
    made = []
    with get_client(sync_client=True) as client:
        try:
            for number, batch in enumerate(sorted(rendered)):
                state = Paused() if number % 2 else Scheduled()
                made.append(client.create_flow_run(review_campaign, parameters=asks | {"batch": batch}, state=state))
            made.append(client.create_flow_run(review_campaign, parameters=asks | {"batch": "x"}, state=Completed()))
            made.append(client.create_flow_run(review_campaign, parameters=asks | {"output_dir": "y", "batch": "y"}))
            made.append(client.create_flow_run(review_campaign, parameters=asks | {"campaign_slug": "z", "batch": "z"}))
            by_hand = client.create_flow_run(review_campaign, parameters=asks)
            with_keys = client.create_flow_run(review_campaign, parameters=asks | {"keys": ["k1"]})
            made += [by_hand, with_keys]
            batches, keys = open_reviews("paged", out)
            assert batches == rendered | {str(by_hand.id), str(with_keys.id)} and keys == {"k1"}
            assert str(by_hand.id) not in open_reviews("paged", out, but=str(by_hand.id))[0]
        finally:  # paused runs of review-campaign: other tests wait for theirs
            for run in made:
                client.delete_flow_run(run.id)


def test_every_exported_picture_is_asked_about_once_whatever_run_exported_it(
    make_campaign: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Review was asked for only of what the asking run rendered: the pictures of a run killed
    before it asked (or run with review off) were never asked about, so never approved nor
    published; and the run's job keys went to Prefect as a parameter, 7 MB for a region."""
    import threading

    import visuels.flows.render_campaign as render_module
    from prefect.flow_runs import resume_flow_run
    from visuels.cli import main
    from visuels.flows.review_campaign import review_campaign
    from visuels.record import review_batches

    campaign, out = make_campaign(), tmp_path / "outputs"
    earlier = render_campaign(campaign=str(campaign), review="no", run={"output_dir": str(out)})
    assert earlier.rendered and earlier.review is None
    asked: list[dict] = []

    def start_review(name: str, parameters: dict, **options: object) -> SimpleNamespace:
        asked.append(parameters | {"idempotency_key": options["idempotency_key"]})
        return SimpleNamespace(name=f"review-{len(asked)}", id=uuid4())

    monkeypatch.setattr(render_module, "run_deployment", start_review)
    # A run with nothing left to render still asks about what the earlier one left undecided.
    again = render_campaign(campaign=str(campaign), review="yes", run={"output_dir": str(out)})
    assert again.rendered == 0 and again.review == "review-1" and again.review_earlier == len(earlier.job_keys)
    # The command line says so (into a folder with pictures to render: it runs the flow, here `again`).
    assert main(["render", str(campaign), "--output-dir", str(tmp_path / "cli")], render=lambda _: again) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"the review also asks about {len(earlier.job_keys)} pictures earlier runs exported"
        " that no review had asked about"
    )
    assert pictures_to_review(out.resolve(), asked[0]["batch"], []) == sorted(earlier.job_keys)
    assert asked[0]["idempotency_key"] == f"review-{asked[0]['batch']}"  # that run started again: the same review
    # Frozen just now, that review may not be in Prefect yet (two machines ending two runs at once):
    # a review started by hand at once finds nothing to ask.
    refused = review_campaign(campaign_slug=earlier.campaign, output_dir=str(out), return_state=True)
    assert refused.is_failed() and refused.message.endswith("every one has a decision, or another review asks")
    # That review never came (it is not in Prefect here): past RECENT_S, its pictures are free. A
    # review started by hand asks about every picture awaiting a decision, frozen when it starts;
    # while it waits, a run asks for no other review of them.
    monkeypatch.setattr(review_batches, "RECENT_S", 0.0)
    result: dict = {}
    reviewer = threading.Thread(
        target=lambda: result.update(outcome=review_campaign(campaign_slug=earlier.campaign, output_dir=str(out)))
    )
    reviewer.start()
    try:
        run_id = wait_until_paused("review-campaign")
        while_open = render_campaign(campaign=str(campaign), review="yes", run={"output_dir": str(out)})
        assert while_open.review is None and not while_open.review_not_sent and len(asked) == 1
        resume_flow_run(run_id, run_input={"reviewer": "Léa"})
    finally:
        reviewer.join(timeout=60)
    assert sorted(result["outcome"].approved) == sorted(file.split("/", 1)[1] for file in earlier.files)
    decided = render_campaign(campaign=str(campaign), review="yes", run={"output_dir": str(out)})
    assert decided.review is None and len(asked) == 1  # every picture has its decision


def test_the_resume_form_offers_codes_to_pick_up_to_a_thousand() -> None:
    """A region's review made the Resume form a multi-select of 106,704 codes (a 1.3 MB schema)."""
    from visuels.flows.review_campaign import MAX_CHOICES, review_form

    few, many = [f"{n:012x}" for n in range(3)], [f"{n:012x}" for n in range(MAX_CHOICES + 1)]
    picked = review_form(few).model_json_schema()["properties"]["rejected"]
    assert picked["items"]["enum"] == few
    typed = review_form(many).model_json_schema()
    assert typed["properties"]["rejected"]["items"] == {"type": "string"} and len(json.dumps(typed)) < 5000
    assert review_form(many)(rejected=[many[-1]], comment="blurry").rejected == [many[-1]]


def test_a_review_with_nothing_to_ask_fails_in_one_line_in_the_campaigns_language(tmp_path: Path) -> None:
    """Its state said "Flow run encountered an exception: ReviewError: ...", in English."""
    from visuels.flows.review_campaign import review_campaign

    (tmp_path / "hiver-2027").mkdir()
    state = review_campaign(campaign_slug="Printemps", output_dir=str(tmp_path), language="fr", return_state=True)
    assert state.is_failed() and "ReviewError" not in state.message
    assert state.message.endswith(
        "pas de campagne « Printemps » dans ce dossier de sortie (ses campagnes : hiver-2027)"
    )
    state = review_campaign(campaign_slug="hiver-2027", output_dir=str(tmp_path), return_state=True)
    assert state.is_failed() and state.message.endswith(
        "no picture to review: every one has a decision, or another review asks"
    )
