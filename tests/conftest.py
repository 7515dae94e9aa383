"""Shared fixtures (the sample charter, campaigns to tweak, an isolated cache, signing keys, a
renderer, databases) and the session's set-up; what they use is ``tests.helpers``."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import SAMPLE_CHARTER_DIR, TEST_WATERMARK_KEY, render_now, write_random_lora, write_small_campaign

if TYPE_CHECKING:
    from visuels.engine.renderer import Renderer


# Before any library import reads them: no network, quiet model libraries, no telemetry, and
# Prefect's files (the temporary servers' database) in a folder of this session, not ~/.prefect.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="visuels-tests-prefect-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_VERBOSITY"] = "error"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("VISUELS_LANGUAGE", "en")  # the messages tests read, whatever this machine's locale


# The longest files (minutes each, measured), started first: ``make test`` runs the files in two
# processes, which then finish together instead of one waiting for the other's last long file.
LONGEST_FIRST = (
    "tests/test_commands.py",
    "tests/test_served.py",
    "tests/test_families.py",
    "tests/test_faults.py",
    "tests/test_processes.py",
    "tests/test_watermark.py",
    "tests/test_flow.py",
    "tests/e2e/test_run_form.py",
    "tests/test_training.py",
    "tests/test_renderer.py",
    "tests/e2e/test_studio.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test on the PostgreSQL server the tests start is marked so (``make test-fast`` leaves it
    out); the longest files go first, each file's tests in their own order."""
    for item in items:
        parameters = getattr(getattr(item, "callspec", None), "params", {})
        if "postgres_url" in getattr(item, "fixturenames", ()) or parameters.get("any_database_url") == "postgresql":
            item.add_marker(pytest.mark.postgres)

    def rank(item: pytest.Item) -> int:
        file = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(file) if file in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: a file keeps its tests' order


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
    """Each phase's report kept on its test (``item.report_call``): a fixture can tell after the
    test whether it failed, and show what helps to see why."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model and hash cache live in a folder of this test session only."""
    folder = tmp_path_factory.mktemp("visuels-cache")
    os.environ["VISUELS_CACHE_DIR"] = str(folder)
    return folder


@pytest.fixture(scope="session", autouse=True)
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local C2PA signing chain for the whole test session, its watermark key ``TEST_WATERMARK_KEY``."""
    from unittest import mock

    from visuels.marking.keys import init_local_chain

    folder = tmp_path_factory.mktemp("signing") / "keys"
    with mock.patch("visuels.marking.watermark_keys.secrets.randbits", return_value=TEST_WATERMARK_KEY):
        init_local_chain(folder)
    os.environ["VISUELS_KEYS_DIR"] = str(folder)
    return folder


@pytest.fixture
def charter_dir(tmp_path: Path) -> Path:
    """A private copy of the sample charter folder, safe to break."""
    target = tmp_path / "charter"
    shutil.copytree(SAMPLE_CHARTER_DIR, target)
    return target


@pytest.fixture
def make_campaign(charter_dir: Path, tmp_path: Path) -> Callable[..., Path]:
    """Write a small campaign over the copied charter; keyword arguments replace its fields."""

    def make(name: str = "campaign.yaml", **fields: Any) -> Path:
        return write_small_campaign(tmp_path / name, **fields)

    return make


@pytest.fixture(scope="session")
def lora_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA on the demo UNet's attention projections, with random (non-zero) weights."""
    return write_random_lora(tmp_path_factory.mktemp("lora"), seed=3)


@pytest.fixture(scope="session")
def renderer() -> Iterator[Renderer]:
    """A renderer finishing pictures inline, with the demo model kept loaded for the whole session."""
    import torch
    from visuels.engine.cpu_stage import CpuStage
    from visuels.engine.renderer import Renderer
    from visuels.models.host import ModelHost

    rendering = Renderer(ModelHost(torch.device("cpu")), CpuStage(workers=0))
    yield rendering
    rendering.close()


@pytest.fixture(scope="session")
def rendered_sample(
    tmp_path_factory: pytest.TempPathFactory, renderer: Renderer
) -> tuple[Path, str, list[str], list[str]]:
    """Four real outputs of the demo model (Sète and Castelnau x 2 formats), rendered, recorded and
    reported once: (output folder, campaign slug, files, job keys). Tests take a copy (``rendered_copy``)."""
    from visuels.planning.plan import plan_render
    from visuels.review.publish import finish_render

    folder = tmp_path_factory.mktemp("sample-render")
    shutil.copytree(SAMPLE_CHARTER_DIR, folder / "charter")
    campaign = write_small_campaign(folder / "campaign.yaml", steps=2)
    out = folder / "outputs"
    plan = plan_render(campaign, out)
    exported = render_now(renderer, plan, out)
    finish_render(plan, out)
    return out, plan.campaign_slug, [item.job.relative_path for item in exported], [item.job.key for item in exported]


@pytest.fixture
def rendered_copy(
    rendered_sample: tuple[Path, str, list[str], list[str]], tmp_path: Path
) -> tuple[Path, str, list[str], list[str]]:
    """A private copy of ``rendered_sample``'s output folder (files, record, reports), safe to change."""
    sample, slug, files, keys = rendered_sample
    out = tmp_path / "outputs"
    shutil.copytree(sample, out)
    return out, slug, files, keys


@pytest.fixture
def exported(make_campaign: Callable[..., Path], tmp_path: Path, renderer: Renderer) -> tuple[Path, Path, Path]:
    """One real output of the demo model: (its file, the output folder, the charter folder)."""
    from visuels.planning.plan import plan_render

    out = tmp_path / "outputs"
    one = {"file": "charter/communes.csv", "names": ["Sète"]}
    plan = plan_render(make_campaign(steps=2, formats=["instagram_square"], communes=one), out)
    [item] = render_now(renderer, plan, out)
    return out / item.job.relative_path, out, tmp_path / "charter"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of this test session (skipped, saying why, where none can run here)."""
    from tests.postgres import missing_reason, postgres_server

    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def any_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of record: a SQLite file, then a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'visuels.sqlite'}"
    from uuid import uuid4

    from tests.postgres import new_database

    return new_database(request.getfixturevalue("postgres_url"), f"test_{uuid4().hex[:12]}")
