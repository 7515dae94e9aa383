"""What tests share beyond fixtures: the sample's paths, the sessions' watermark key, campaign
files to write and tweak, a random LoRA, a render recorded as a run records it, the ledger's rows,
a marked picture. Imported by tests and benchmarks alike (``tests/conftest.py`` holds the fixtures)."""

from __future__ import annotations

import datetime
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from PIL import Image
    from visuels.engine.export import ExportedFile
    from visuels.engine.renderer import Renderer
    from visuels.marking.c2pa_manifest import Provenance
    from visuels.planning.plan import RenderPlan

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CHARTER_DIR = REPO / "brand_assets" / "solane"
SAMPLE_CAMPAIGN = REPO / "campaigns" / "ete-2027.yaml"

# The test sessions' watermark key: the same in every session, so that a test's outcome does not
# depend on a random key. The tiny random-weight models make dense colour noise, where the pixel
# watermark is hardest to read (its documented limit): with a new key each session, a FLUX.2 klein
# picture failed to decode once in a day of passing sessions, and such a failure cannot be replayed.
TEST_WATERMARK_KEY = int.from_bytes(hashlib.sha256(b"visuels test sessions").digest()[:16], "big")


def provenance_of(picture: Image.Image, **fields: Any) -> Provenance:
    """What a manifest says of a generated ``picture`` signed with the session's keys (its ISCC code,
    a payload of its own); keyword arguments replace its fields."""
    from visuels.marking import iscc
    from visuels.marking.c2pa_manifest import Provenance
    from visuels.marking.keys import signing_files
    from visuels.marking.xmp import DigitalSourceType

    made = {
        "title": "out.png",
        "source_type": DigitalSourceType.generated,
        "model": "demo",
        "model_hash": "0" * 64,
        "lora_hash": None,
        "watermark_id": "0123456789abcdef",
        "watermark_key_id": signing_files().watermark.id,
        "image_code": iscc.image_code(picture),
    }
    return Provenance(**(made | fields))


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def write_small_campaign(path: Path, **fields: Any) -> Path:
    """A small campaign over a copy of the sample charter in ``charter/`` beside ``path`` (Sète and
    Castelnau, one audience, two formats, 3 steps); keyword arguments replace its fields."""
    data: dict[str, Any] = {
        "name": "Test campagne",
        "charter": "charter/charter.yaml",
        "communes": {"file": "charter/communes.csv", "names": ["Sète", "Castelnau-d'Estrétefonds"]},
        "model": {"kind": "demo"},
        "prompt": "poster of {commune}, {landmark}, {landscape}, {season}, for {audience}",
        "season": "summer",
        "audiences": {"residents": "local families"},
        "formats": ["instagram_square", "story"],
        "steps": 3,
        "guidance": 4.0,
        "scheduler": "euler",
        "seed": {"policy": "per_job", "base": 7},
    } | fields
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def write_random_lora(folder: Path, seed: int) -> Path:
    """A LoRA on the demo UNet's attention projections, with random (non-zero) weights."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from visuels.models.demo import build_demo_pipeline

    unet = build_demo_pipeline().unet
    torch.manual_seed(seed)
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet))
    return folder / "pytorch_lora_weights.safetensors"


def write_lora_at_other_widths(lora: Path, path: Path) -> Path:
    """``lora``'s layer names at twice their input widths: a LoRA made for a wider model."""
    import torch
    from safetensors.torch import load_file, save_file

    widths = {
        name: torch.ones(value.shape[0], value.shape[1] * 2) if "lora_A" in name else value
        for name, value in load_file(str(lora)).items()
    }
    save_file(widths, str(path))
    return path


def render_now(renderer: Renderer, plan: RenderPlan, out: Path, jobs: list | None = None) -> list[ExportedFile]:
    """Render ``jobs`` (default: the plan's pending ones) and record them, as a run does."""
    from visuels.engine.run import export_target, render_jobs
    from visuels.planning.request import RenderSettings

    chosen = plan.pending if jobs is None else jobs
    return render_jobs(renderer, plan.setup, chosen, export_target(plan, out), RenderSettings(batch_size=4))


def rendered_campaign_file(out: Path) -> Path:
    """The campaign ``rendered_sample`` rendered, for a copy ``out`` of its output folder: the same
    campaign file, its charter beside it."""
    campaign = out.parent / "campaign.yaml"
    if not campaign.exists():
        shutil.copytree(SAMPLE_CHARTER_DIR, out.parent / "charter")
        write_small_campaign(campaign, steps=2)
    return campaign


def ledger_rows(out: Path) -> list[dict]:
    """The ledger of an output folder's SQLite record, oldest first."""
    import sqlite3

    with sqlite3.connect(out / "visuels.sqlite") as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT * FROM ledger ORDER BY id")]


def marked_picture(folder: Path, name: str = "marked.png") -> Path:
    """A picture marked and signed as export marks its outputs (label, watermark, XMP, C2PA),
    without a model or a record: for tests of what reads the marks (detect, the detector)."""
    from PIL import Image
    from visuels._internal.atomic import staged
    from visuels.inputs.charter import load_charter
    from visuels.marking.keys import signing_files
    from visuels.marking.mark import MarkingContext, write_marked
    from visuels.postprocess.label import draw_ai_label
    from visuels.record.ledger import LedgerEntry

    charter = load_charter(SAMPLE_CHARTER_DIR)
    with Image.open(sorted((SAMPLE_CHARTER_DIR / "references").glob("*.png"))[1]) as reference:
        labelled, _ = draw_ai_label(reference.convert("RGB").resize((768, 768)), charter, "fr")
    entry = LedgerEntry(
        file=name,
        sha256="",
        phash="",
        watermark="5ea51de02027c0de",
        job_key="5ea51de02027c0de" + "0" * 48,
        model_hash="0" * 64,
        lora_hash=None,
        charter_hash=charter.hash,
        prompt="a harbour",
        seed=1,
        width=768,
        height=768,
    )
    context = MarkingContext(creator=charter.spec.creator, model="demo", signing=signing_files())
    target = folder / name
    with staged(target) as file:
        write_marked(labelled, file, "png", entry, 72, context)
        file.publish()
    return target


def reissue_signer(folder: Path, not_before: datetime.datetime, not_after: datetime.datetime) -> None:
    """Give ``folder``'s signer a certificate valid from ``not_before`` to ``not_after``, issued as its
    own was (same subject, key, issuer and extensions): an expired one, one about to expire."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from visuels.marking.keys import CHAIN, INTERMEDIATE_KEY, SIGNER_KEY, read_certificates, read_private_key

    leaf, intermediate = read_certificates(folder / CHAIN)[:2]
    builder = (
        x509.CertificateBuilder()
        .subject_name(leaf.subject)
        .issuer_name(leaf.issuer)
        .public_key(read_private_key(folder / SIGNER_KEY).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension in leaf.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    reissued = builder.sign(read_private_key(folder / INTERMEDIATE_KEY), hashes.SHA256())
    pem = serialization.Encoding.PEM
    (folder / CHAIN).write_bytes(reissued.public_bytes(pem) + intermediate.public_bytes(pem))
