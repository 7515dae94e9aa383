"""``visuels doctor``: what this machine can do for visuels, and what is missing, in plain words."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from cryptography import x509
from visuels.config import demo_model_dir
from visuels.inputs.lora_runs import WEIGHTS_FILE, lora_root
from visuels.marking.keys import CHAIN, DEVELOPMENT_ORGANISATION, SIGNER_KEY, TRUST_ANCHORS, keys_dir
from visuels.record.database import database_url, display_url, is_missing

LIBRARIES = ("torch", "diffusers", "transformers", "peft", "prefect", "c2pa-python", "pillow", "opencv-python-headless")


@dataclass(frozen=True)
class Finding:
    topic: str
    ok: bool  # False: something is missing, and the command exits 1
    text: str
    note: bool = False  # works, but worth knowing (no GPU, development keys): not "ok"


def _hardware() -> list[Finding]:
    import torch

    findings = [Finding("CPU", True, f"{os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads")]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            memory = properties.total_memory / 2**30
            findings.append(Finding(f"CUDA {index}", True, f"{properties.name}, {memory:.0f} GiB: renders run here"))
    else:
        findings.append(
            Finding("CUDA", True, "no NVIDIA GPU seen: renders and retouches run on the CPU (slowly)", note=True)
        )
    if torch.backends.mps.is_available():
        findings.append(Finding("MPS", True, "Apple GPU available: retouches run on it (float16)"))
    return findings


def _versions() -> list[Finding]:
    found = []
    for name in LIBRARIES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} MISSING")
    text = ", ".join(found)
    return [Finding("versions", "MISSING" not in text, f"Python {platform.python_version()}; {text}")]


def _keys() -> Finding:
    folder = keys_dir()
    missing = [name for name in (SIGNER_KEY, CHAIN, TRUST_ANCHORS) if not (folder / name).is_file()]
    if missing:
        return Finding(
            "signing keys",
            False,
            f"{folder}: {', '.join(missing)} missing: run `visuels keys init` (or set VISUELS_KEYS_DIR)",
        )
    leaf = x509.load_pem_x509_certificates((folder / CHAIN).read_bytes())[0]
    subject = leaf.subject.rfc4514_string()
    text = f"{folder}: signer {subject}, valid until {leaf.not_valid_after_utc:%Y-%m-%d}"
    if DEVELOPMENT_ORGANISATION in subject:
        # Made by `visuels keys init`: fine to try things, not to publish (no one trusts its root).
        text += "; development keys: publish with the region’s own certificate (docs/compliance.md, Keys)"
    return Finding("signing keys", True, text, note=DEVELOPMENT_ORGANISATION in subject)


def _models() -> list[Finding]:
    demo = demo_model_dir()
    demo_text = f"demo model in {demo}" if (demo / "model_index.json").is_file() else "demo model: built on first use"
    # One per training run (its diffusers file; the kohya copy beside it is the same LoRA).
    loras = sorted(lora_root().rglob(WEIGHTS_FILE)) if lora_root().is_dir() else []
    lora_text = (
        f"{len(loras)} trained LoRA(s) under {lora_root()}, newest {max(loras, key=lambda p: p.stat().st_mtime)}"
        if loras
        else f"no LoRA under {lora_root()}: `visuels train` makes the charter's"
    )
    return [
        Finding("model", True, f"{demo_text}; a campaign's `model:` (or --model) names a real checkpoint"),
        Finding("LoRA", True, lora_text),
    ]


def _record(output_root: Path) -> Finding:
    url = database_url(output_root)
    state = "not created yet (the first render does)" if is_missing(url) else "present"
    return Finding("database", True, f"{display_url(url)}: {state}")


def _prefect() -> Finding:
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return Finding("Prefect", True, f"server {url}: the studio shows its paused reviews")
    return Finding("Prefect", True, "no PREFECT_API_URL: renders start a temporary server; the studio retouches only")


def _campaign(path: Path) -> list[Finding]:
    """The model and LoRA a campaign would render with (a bad campaign raises its usual error)."""
    from visuels.inputs.campaign import load_campaign
    from visuels.models.reference import describe_model
    from visuels.planning.jobs import lora_hash

    campaign = load_campaign(path)
    info = describe_model(campaign.model, source=str(path))
    findings = [Finding("campaign model", True, f"{info.description} (hash {info.hash[:12]}, {info.native_size} px)")]
    if campaign.lora_path is None:
        findings.append(Finding("campaign LoRA", True, "none"))
    else:
        lora = lora_hash(campaign.lora_path)
        findings.append(Finding("campaign LoRA", True, f"{campaign.lora_path} (hash {(lora or '')[:12]})"))
    return findings


def diagnose(output_root: Path, campaign: Path | None = None) -> list[Finding]:
    found = [*_hardware(), *_versions(), *_models()]
    if campaign is not None:
        found += _campaign(campaign)
    return [*found, _keys(), _record(output_root), _prefect()]
