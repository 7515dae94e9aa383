"""The starting-noise mark (issue #33) on the demo model: the noise is ordinary noise, the same job
gives the same noise, and inversion reads the payload back from exported files, after a mild
attack too, and from nothing else."""

import io
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from visuels.inputs.campaign import load_campaign
from visuels.inputs.model_refs import DemoModelRef
from visuels.marking.keys import signing_files
from visuels.models.inversion import read_noise_mark
from visuels.models.noise import marked_noise
from visuels.models.noise_mark import AGREEING_BITS, agreeing_bits, false_positive_rate, payload_for_key
from visuels.models.reference import describe_model
from visuels.planning.jobs import expand_jobs
from visuels.planning.plan import plan_render

from tests.helpers import SAMPLE_CHARTER_DIR, render_now

KEY = 0x0F1E2D3C4B5A69788796A5B4C3D2E1F0


def normal_cdf(values: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.vectorize(math.erf)(values / math.sqrt(2)))


def kolmogorov_smirnov(sample: np.ndarray) -> float:
    """The largest gap between the sample's distribution and the standard normal law."""
    ordered = np.sort(sample)
    expected = normal_cdf(ordered)
    steps = np.arange(1, len(ordered) + 1) / len(ordered)
    return float(max((steps - expected).max(), (expected - (steps - 1 / len(ordered))).max()))


def test_marked_noise_is_distributed_as_ordinary_noise() -> None:
    shape = (4, 64, 64)
    marked = np.concatenate(
        [
            marked_noise(payload, KEY, seed, shape).numpy().ravel()
            for payload, seed in ((0x0123456789ABCDEF, 1), (0xFEDCBA9876543210, 2), (7, 3))
        ]
    )
    ordinary = torch.randn(marked.size, generator=torch.Generator().manual_seed(0)).numpy()
    critical = 1.63 / math.sqrt(marked.size)  # Kolmogorov-Smirnov at the 1 % level
    assert kolmogorov_smirnov(marked) < critical
    assert kolmogorov_smirnov(ordinary) < critical  # the same test, passed by torch.randn
    assert abs(marked.mean()) < 0.02 and abs(marked.std() - 1) < 0.02
    assert (marked > 0).mean() == pytest.approx(0.5, abs=0.01)  # the keystream evens the signs out
    # Neighbouring values are independent: the code's repetition does not show.
    assert abs(np.corrcoef(marked[:-1], marked[1:])[0, 1]) < 0.02
    assert abs(np.corrcoef(marked[:-204], marked[204:])[0, 1]) < 0.02


def test_the_same_job_gives_the_same_noise_and_any_change_other_noise() -> None:
    shape = (4, 32, 32)
    noise = marked_noise(0xC0FFEE, KEY, 5, shape)
    assert torch.equal(noise, marked_noise(0xC0FFEE, KEY, 5, shape))

    def flipped(other: torch.Tensor) -> float:
        return float((torch.sign(other) != torch.sign(noise)).float().mean())

    assert flipped(marked_noise(0xC0FFEF, KEY, 5, shape)) > 0.05  # one payload bit: its code's bits and the CRC
    assert flipped(marked_noise(0xC0FFEE, KEY ^ 1, 5, shape)) == pytest.approx(0.5, abs=0.03)  # another key
    reseeded = marked_noise(0xC0FFEE, KEY, 6, shape)
    assert torch.equal(torch.sign(reseeded), torch.sign(noise)) and not torch.equal(reseeded, noise)


def test_false_positive_rate_of_the_candidate_check() -> None:
    assert false_positive_rate(0) == 1.0
    assert false_positive_rate(AGREEING_BITS) < 1e-9
    assert false_positive_rate(103) == pytest.approx(0.5, abs=0.06)


def test_text_to_image_jobs_of_unet_models_are_marked_photo_jobs_are_not(make_campaign: Callable[..., Path]) -> None:
    jobs = expand_jobs(load_campaign(make_campaign()), describe_model(DemoModelRef()), "float32")
    assert {job.noise_mark for job in jobs if job.photo is None} == {"1"}
    assert {job.noise_mark for job in jobs if job.photo is not None} == {None}
    # Jobs that share a generated picture (here: its languages) share its generation key.
    bilingual = expand_jobs(
        load_campaign(make_campaign(languages=["fr", "oc"], seed={"policy": "per_commune", "base": 3}, photos=None)),
        describe_model(DemoModelRef()),
        "float32",
    )
    by_picture: dict[tuple, set[str]] = {}
    for job in bilingual:
        by_picture.setdefault((job.commune_insee, job.format), set()).add(job.generation_key)
    assert all(len(keys) == 1 for keys in by_picture.values())
    assert len({job.key for job in bilingual}) == len(bilingual)


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_inversion_reads_the_payload_from_exported_files_and_nothing_else(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer
) -> None:
    campaign = make_campaign(formats=["instagram_square"], steps=12, photos=None)
    out = tmp_path / "outputs"
    plan = plan_render(campaign, out)
    exported = render_now(renderer, plan, out)
    key = signing_files().watermark.value
    with renderer.host.use(DemoModelRef(), torch.float32, None) as pipeline:
        for item in exported:
            job = item.job
            picture = np.asarray(Image.open(out / job.relative_path).convert("RGB"))
            buffer = io.BytesIO()
            Image.fromarray(picture).save(buffer, format="JPEG", quality=80)
            compressed = np.asarray(Image.open(buffer).convert("RGB"))
            for shown in (picture, compressed):  # as exported, then after a mild attack
                reading = read_noise_mark(pipeline, shown, key, job.generation_width, job.generation_height)
                assert reading.payload == payload_for_key(job.generation_key)
                assert agreeing_bits(reading, payload_for_key(job.generation_key)) >= AGREEING_BITS
            other_key = read_noise_mark(pipeline, picture, key ^ 0xFFFF, job.generation_width, job.generation_height)
            assert other_key.payload is None
            assert agreeing_bits(other_key, payload_for_key(job.generation_key)) < AGREEING_BITS
    # `visuels detect --deep`: the mark beside the others, its basis said apart, relied on.
    from visuels.inputs.charter import load_charter
    from visuels.marking.keys import TRUST_ANCHORS, keys_dir
    from visuels.marking.watermark_keys import known_keys
    from visuels.review.deep_detect import DeepReader
    from visuels.review.detect import detect_file

    deep = DeepReader(renderer.host, describe_model(DemoModelRef()), known_keys(keys_dir()))
    path = out / exported[0].job.relative_path
    detection = detect_file(path, load_charter(SAMPLE_CHARTER_DIR), keys_dir() / TRUST_ANCHORS, deep=deep)
    assert detection.marks["noise"].found and "noise" in detection.relied_on
    assert f"{payload_for_key(exported[0].job.generation_key):016x}" in detection.marks["noise"].basis
    # The detector service, started with --deep: the same mark in its signed answer.
    from fastapi.testclient import TestClient
    from visuels.detector.app import DetectorService, create_app
    from visuels.marking.keys import detector_key
    from visuels.record.database import database_url

    service = DetectorService(
        charter=load_charter(SAMPLE_CHARTER_DIR),
        trust_anchors=keys_dir() / TRUST_ANCHORS,
        keys=known_keys(keys_dir()),
        signing_key=detector_key(),
        database_url=database_url(tmp_path / "record"),
        deep=deep,
    )
    client = TestClient(create_app(service), base_url="http://127.0.0.1", client=("127.0.0.1", 40000))
    answer = client.post("/api/detect", content=path.read_bytes(), headers={"Content-Type": "image/png"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["detections"][0]["marks"]["noise"]["found"]
    # A picture of the same model the key never marked: ordinary starting noise.
    unmarked = renderer.host.generate(DemoModelRef(), torch.float32, None, [exported[0].job])[0]
    with renderer.host.use(DemoModelRef(), torch.float32, None) as pipeline:
        reading = read_noise_mark(pipeline, unmarked, key, unmarked.shape[1], unmarked.shape[0])
    assert reading.payload is None
    assert agreeing_bits(reading, payload_for_key(exported[0].job.generation_key)) < AGREEING_BITS


def test_a_reading_is_confirmed_against_candidates_at_the_decoder_s_rate() -> None:
    from visuels._internal.payload_code import coded_bits, coded_bits_of_many
    from visuels.models.noise_mark import FALSE_POSITIVE_RATE, NoiseReading, best_candidate

    rng = np.random.default_rng(5)
    payloads = [int(value) for value in rng.integers(0, 2**63, size=300)]
    many = coded_bits_of_many(payloads)
    assert all(np.array_equal(row, coded_bits(payload)) for row, payload in zip(many, payloads, strict=True))
    truth = coded_bits(payloads[17]).astype(np.float64) * 2 - 1
    worn = truth.copy()
    worn[rng.choice(204, size=40, replace=False)] *= -1  # 164 of 204 agree: too worn to decode here
    found = best_candidate(NoiseReading(votes=worn, payload=None), payloads)
    assert found is not None and found.payload == payloads[17] and found.agreeing == 164
    assert found.confirmed and found.rate == pytest.approx(300 * false_positive_rate(164))
    # A reading no candidate made: its best agreement stays near half the bits, never confirmed.
    stranger = NoiseReading(votes=rng.choice([-1.0, 1.0], size=204), payload=None)
    best = best_candidate(stranger, payloads)
    assert best is not None and not best.confirmed and best.rate > FALSE_POSITIVE_RATE
    assert best_candidate(stranger, []) is None


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_detect_deep_confirms_a_worn_mark_against_the_ledger(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A poster's second pass and a layout's overlays wear the mark on the demo's small latents
    below what the code decodes (a tester's poster: 'no starting-noise mark'); the ledger's record
    of each generated picture's mark confirms it, and confirms nothing on a picture it never marked."""
    from visuels.marking.keys import keys_dir
    from visuels.marking.watermark_keys import known_keys
    from visuels.models.inversion import recover_noise
    from visuels.models.noise_mark import read_bits
    from visuels.record.database import Database, database_url
    from visuels.record.ledger import latest_for_jobs, noise_marks
    from visuels.review.deep_detect import DeepReader

    campaign = make_campaign(formats=["poster_a3", "web_banner"], steps=12, photos=None)
    out = tmp_path / "outputs"
    plan = plan_render(campaign, out)
    exported = render_now(renderer, plan, out)
    database = Database(database_url(out))
    rows = latest_for_jobs(database, [item.job.key for item in exported])
    recorded = noise_marks(database)
    database.close()
    assert all(
        rows[item.job.key]["noise_mark"] == f"{payload_for_key(item.job.generation_key):016x}" for item in exported
    )
    keys = known_keys(keys_dir())
    blind = DeepReader(renderer.host, describe_model(DemoModelRef()), keys)
    confirming = DeepReader(renderer.host, describe_model(DemoModelRef()), keys, recorded=lambda: recorded)
    undecoded = []
    for item in exported:
        picture = Image.open(out / item.job.relative_path)
        payload = f"{payload_for_key(item.job.generation_key):016x}"
        if not blind(picture).found:
            undecoded.append(out / item.job.relative_path)
        mark = confirming(picture)
        assert mark.found and payload in str(mark.basis), (item.job.relative_path, mark.basis)
    assert undecoded  # the case the ledger answers: these outputs include one the code alone misses
    # `visuels detect --deep demo FILE` finds the ledger of the output folder the file lies in.
    from visuels.cli.main import main

    capsys.readouterr()
    assert main(["detect", "--deep", "demo", str(undecoded[0])]) == 0
    assert "coded bits agree with the one the ledger records" in capsys.readouterr().out
    # A picture of the same jobs from ordinary noise is confirmed by no recorded mark.
    unmarked = renderer.host.generate(DemoModelRef(), torch.float32, None, [exported[0].job])[0]
    with renderer.host.use(DemoModelRef(), torch.float32, None) as pipeline:
        noise = recover_noise(pipeline, unmarked, unmarked.shape[1], unmarked.shape[0])
    assert not confirming(Image.fromarray(unmarked)).found
    assert read_bits(noise, keys[0].value).payload is None


@pytest.mark.slow  # renders with the demo model: `make test`, not the edit loop
def test_detect_deep_says_no_mark_is_expected_on_a_photos_picture_without_inverting(
    make_campaign: Callable[..., Path], tmp_path: Path, renderer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A picture drawn from a commune photo starts from the photo, not from marked noise: `detect
    --deep` said "no starting-noise mark of this deployment's keys" of it, as of a stranger's
    picture. The ledger knows it by the pixel watermark: said so, and the inversion is not run."""
    from visuels.cli.main import main
    from visuels.marking.keys import keys_dir
    from visuels.marking.watermark_keys import known_keys
    from visuels.review.deep_detect import DeepReader

    campaign = make_campaign(formats=["instagram_square"], photos={"strength": 0.3})
    out = tmp_path / "outputs"
    exported = render_now(renderer, plan_render(campaign, out), out)
    from_photo = [out / item.job.relative_path for item in exported if item.job.photo is not None]
    from_text = [out / item.job.relative_path for item in exported if item.job.photo is None]
    assert from_photo and from_text  # Sète has photos, Castelnau none
    capsys.readouterr()
    assert main(["detect", "--deep", "demo", str(from_photo[0]), str(from_text[0])]) == 0
    said = [line.strip() for line in capsys.readouterr().out.splitlines() if "starting-noise mark:" in line]
    watermark = from_photo[0].stem.rsplit("-", 1)[1]
    assert said[0].startswith(
        f"- starting-noise mark: none expected: the ledger records the picture of watermark {watermark}"
    )
    assert said[1].startswith("+ starting-noise mark: payload ")

    class NoInversion:
        def use(self, *args: object) -> None:
            raise AssertionError("no inversion where the ledger says no mark was drawn")

    model, keys = describe_model(DemoModelRef()), known_keys(keys_dir())
    reader = DeepReader(NoInversion(), model, keys, drawn_marked=lambda _: False)  # type: ignore[arg-type]
    mark = reader(Image.open(from_photo[0]), watermark)
    assert not mark.found and "none expected" in str(mark.basis)
