"""``visuels doctor``: what this machine can do for visuels, and what is missing, in plain words."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from visuels._internal.atomic import check_output_folder
from visuels.config import default_charter, demo_model_dir, settings
from visuels.errors import Text, VisuelsError
from visuels.inputs.campaign import ModelLicenceUse
from visuels.inputs.lora_runs import WEIGHTS_FILE, complete_runs, interrupted_runs, lora_root
from visuels.marking.keys import (
    CHAIN,
    DEVELOPMENT_ORGANISATION,
    SIGNER_KEY,
    TRUST_ANCHORS,
    SigningError,
    keys_dir,
    require_signing_files,
    signer_certificate,
)
from visuels.marking.watermark_keys import WatermarkKeyError, active_key, ring
from visuels.models.families import edits_by_instruction, family_named
from visuels.models.licences import known
from visuels.models.reference import ModelInfo, demo_built
from visuels.record.database import database_url, display_url, is_missing

# File systems whose locks SQLite cannot trust between machines (its WAL needs one host's memory).
NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "afs", "ceph", "fuse.sshfs", "glusterfs", "lustre"}
MOUNTS = Path("/proc/self/mountinfo")
LIBRARIES = (
    "visuels",
    "torch",
    "diffusers",
    "transformers",
    "peft",
    "prefect",
    "c2pa-python",
    "pillow",
    "opencv-python-headless",
)


@dataclass(frozen=True)
class Finding:
    topic: Text
    ok: bool  # False: something is missing, and the command exits 1
    text: Text
    note: bool = False  # works, but worth knowing (no GPU, development keys): not "ok"
    refused: bool = False  # not ok because a render would refuse it (a licence, a LoRA), not missing


def _hardware() -> list[Finding]:
    import torch
    from visuels.models.float8 import float8_available

    threads = Text("{cores} cores, torch uses {threads} threads", cores=os.cpu_count(), threads=torch.get_num_threads())
    findings = [Finding(Text("CPU"), True, threads)]
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            properties = torch.cuda.get_device_properties(index)
            memory = properties.total_memory / 2**30
            if float8_available(torch.device("cuda", index)):
                here = Text(
                    "{name}, {memory:.0f} GiB, FP8 products (--dtype float8): renders run here",
                    name=properties.name,
                    memory=memory,
                )
            else:
                here = Text("{name}, {memory:.0f} GiB: renders run here", name=properties.name, memory=memory)
            findings.append(Finding(Text("CUDA {index}", index=index), True, here))
    else:
        findings.append(
            Finding(
                Text("CUDA"),
                True,
                Text("no NVIDIA GPU seen: renders and retouches run on the CPU (slowly)"),
                note=True,
            )
        )
    if torch.backends.mps.is_available():
        findings.append(Finding(Text("MPS"), True, Text("Apple GPU available: retouches run on it (float16)")))
    return findings


def _versions() -> list[Finding]:
    found = []
    for name in LIBRARIES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} MISSING")
    text = ", ".join(found)
    versions = Text("Python {python}; {libraries}", python=platform.python_version(), libraries=text)
    return [Finding(Text("versions"), "MISSING" not in text, versions)]


def _keys() -> Finding:
    folder = keys_dir()
    missing = [name for name in (SIGNER_KEY, CHAIN, TRUST_ANCHORS) if not (folder / name).is_file()]
    if SIGNER_KEY in missing:
        files = ", ".join(missing)
        said = (
            Text(
                "{folder}: {files} is missing: run `visuels keys init` (or set VISUELS_KEYS_DIR)",
                folder=folder,
                files=files,
            )
            if len(missing) == 1
            else Text(
                "{folder}: {files} are missing: run `visuels keys init` (or set VISUELS_KEYS_DIR)",
                folder=folder,
                files=files,
            )
        )
        return Finding(Text("signing keys"), False, said)
    try:
        require_signing_files(folder)
        leaf = signer_certificate(folder)
    except SigningError as exc:  # missing beside the key, or there and unable to sign: a render refuses
        said = Text("{path}: {problem}", path=exc.file, problem=exc.text)
        return Finding(Text("signing keys"), False, said, refused=Path(exc.file).is_file())
    subject = leaf.subject.rfc4514_string()
    until = f"{leaf.not_valid_after_utc:%Y-%m-%d}"
    text = Text("{folder}: signer {subject}, valid until {until}", folder=folder, subject=subject, until=until)
    if DEVELOPMENT_ORGANISATION in subject:
        # Made by `visuels keys init`: fine to try things, not to publish (no one trusts its root).
        text = Text(
            "{folder}: signer {subject}, valid until {until}; development keys: publish with the region's own"
            " certificate (docs/compliance.md, Keys)",
            folder=folder,
            subject=subject,
            until=until,
        )
    return Finding(Text("signing keys"), True, text, note=DEVELOPMENT_ORGANISATION in subject)


def _watermark_key() -> Finding:
    topic = Text("watermark key")
    try:
        key = active_key(keys_dir())
        held = len(ring(keys_dir()))
    except WatermarkKeyError as exc:
        return Finding(topic, False, exc.text)
    if key.demo:  # set on purpose, but its marks prove nothing: anyone can write them
        return Finding(topic, True, Text("the public demo key: fine to try things, not to publish"), note=True)
    detect = (
        Text("{id} marks and detects: the ring holds no other key", id=key.id)
        if held == 1
        else Text("{id} marks; {count} keys in the ring detect", id=key.id, count=held)
    )
    return Finding(topic, True, detect)


def _models() -> list[Finding]:
    demo = demo_model_dir()
    demo_text = Text("demo model in {folder}", folder=demo) if demo_built() else Text("demo model: built on first use")
    # One per complete training run (an interrupted one is no LoRA yet: said apart).
    loras = [run / WEIGHTS_FILE for run in complete_runs(lora_root())]
    lora_text = (
        Text("1 trained LoRA under {folder}: {newest}", folder=lora_root(), newest=loras[0])
        if len(loras) == 1
        else Text(
            "{count} trained LoRAs under {folder}, newest {newest}",
            count=len(loras),
            folder=lora_root(),
            newest=loras[-1],
        )
        if loras
        else Text("no LoRA under {folder}: `visuels train` makes the charter's", folder=lora_root())
    )
    model = Text("{demo}; a campaign's `model:` (or --model) names a real checkpoint", demo=demo_text)
    found = [_demo_buildable() or Finding(Text("model"), True, model), Finding(Text("LoRA"), True, lora_text)]
    if interrupted := interrupted_runs(lora_root()):
        said = Text(
            "training runs under {folder} that did not end: {count}, newest {newest};"
            " `visuels train CHARTER_DIR --resume RUN` continues one",
            folder=lora_root(),
            count=len(interrupted),
            newest=interrupted[-1],
        )
        found.append(Finding(Text("training"), True, said, note=True))
    return found


def _demo_buildable() -> Finding | None:
    """A finding when the demo model is not built and its folder cannot be made (None: it can)."""
    if demo_built():
        return None
    try:
        check_output_folder(demo_model_dir().parent, kind=Text("cache folder"))
    except VisuelsError as exc:
        said = Text(
            "the demo model cannot be built in {folder}: {problem} (VISUELS_CACHE_DIR)",
            folder=exc.file,
            problem=exc.text,
        )
        return Finding(Text("model"), False, said)
    return None


def _charter() -> Finding:
    """The charter pictures are checked against when a command is given none (``VISUELS_CHARTER``)."""
    from visuels.errors import VisuelsError
    from visuels.inputs.charter import load_charter

    topic, folder = Text("charter"), default_charter()
    try:
        name = load_charter(folder).spec.name
    except VisuelsError as exc:
        return Finding(topic, False, Text("{where}: {problem} (VISUELS_CHARTER)", where=exc.where, problem=exc.text))
    if settings().charter is None:
        sample = Text(
            "the sample charter ({name}), unless a command is given --charter: set VISUELS_CHARTER to your region's",
            name=name,
        )
        return Finding(topic, True, sample, note=True)
    return Finding(
        topic, True, Text("{folder} ({name}), unless a command is given --charter", folder=folder, name=name)
    )


def _record(output_root: Path, mounts: str) -> Finding:
    url = database_url(output_root)
    state = Text("not created yet (the first render does)") if is_missing(url) else Text("present")
    said = Text("{url}: {state}", url=display_url(url), state=state)
    shared = network_filesystem(output_root, mounts) if url.startswith("sqlite") else None
    if shared is None:
        return Finding(Text("database"), True, said)
    return Finding(
        Text("database"),
        True,
        Text(
            "{said}, on a network file system ({kind}): right for this machine alone; machines that share"
            " this folder need a PostgreSQL record (VISUELS_DATABASE_URL), SQLite's locks do not hold between them",
            said=said,
            kind=shared,
        ),
        note=True,
    )


def network_filesystem(path: Path, mounts: str) -> str | None:
    """The kind of network file system ``path`` (or its nearest existing folder) is on, from the
    text of ``/proc/self/mountinfo``; None for a local one, or where it cannot be told."""
    where = path.absolute()
    while not where.exists() and where.parent != where:
        where = where.parent
    where = where.resolve()
    best, kind = -1, None
    for line in mounts.splitlines():
        fields = line.split()
        if "-" not in fields or len(fields) < 5:
            continue
        point = Path(re.sub(r"\\([0-7]{3})", lambda code: chr(int(code[1], 8)), fields[4]))  # a space is \040
        if where.is_relative_to(point) and len(point.parts) > best:
            best, kind = len(point.parts), fields[fields.index("-") + 1]
    return kind if kind in NETWORK_FILESYSTEMS else None


def _prefect() -> Finding:
    url = os.environ.get("PREFECT_API_URL")
    if url:
        return Finding(Text("Prefect"), True, Text("server {url}: the studio shows its paused reviews", url=url))
    return Finding(
        Text("Prefect"),
        True,
        Text("no PREFECT_API_URL: renders start a temporary server; the studio retouches only"),
    )


def _model(topic: Text, info: ModelInfo, declared: ModelLicenceUse | None = None) -> list[Finding]:
    """A model's family, size and hash, and its licence: whether a region may publish its pictures."""
    family = family_named(info.family).label
    said = Text(
        "{model}: {family}, {size} px, hash {hash}",
        model=info.description,
        family=family,
        size=info.native_size,
        hash=info.hash[:12],
    )
    licence = info.licence
    if licence.id is None and declared is not None and declared.licence is not None:
        licence = known(declared.licence, "campaign")
    topic_licence = Text("{topic} licence", topic=topic)
    if licence.id is None:
        verdict = Finding(
            topic_licence,
            True,
            Text("none in its card or files: read its licence, then declare it (`model_licence.licence`)"),
            note=True,
        )
    elif not licence.refuses_publication:
        verdict = Finding(topic_licence, True, Text("{licence}: a region may publish its pictures", licence=licence.id))
    elif declared is not None and declared.override is not None:
        verdict = Finding(
            topic_licence,
            True,
            Text(
                "{licence} refuses publication; this campaign overrides it: {reason}",
                licence=licence.id,
                reason=declared.override,
            ),
            note=True,
        )
    elif edits_by_instruction(info.family):
        verdict = Finding(
            topic_licence,
            False,
            Text(
                "{licence} does not let a region publish its pictures: retouching with it is refused",
                licence=licence.id,
            ),
            refused=True,
        )
    else:
        verdict = Finding(
            topic_licence,
            False,
            Text(
                "{licence} does not let a region publish its pictures: a campaign on it is refused unless it"
                " records why (`model_licence.override`)",
                licence=licence.id,
            ),
            refused=True,
        )
    return [Finding(topic, True, said), verdict]


def _campaign(path: Path) -> list[Finding]:
    """The model and LoRAs a campaign would render with, and whether they fit it (a bad campaign
    raises its usual error)."""
    from visuels.errors import CampaignError
    from visuels.inputs.campaign import load_campaign
    from visuels.models.reference import describe_model
    from visuels.planning.jobs import lora_hash
    from visuels.planning.model_use import check_lora_fits

    campaign = load_campaign(path)
    info = describe_model(campaign.model, source=str(path))
    findings = _model(Text("campaign model"), info, campaign.spec.model_licence)
    try:
        check_lora_fits(campaign, info)
        misfit = None
    except CampaignError as exc:  # said as a finding: the rest of the machine is still worth seeing
        misfit = exc
    for topic, field, lora_path in (
        (Text("campaign LoRA"), "lora", campaign.lora_path),
        (Text("campaign speed LoRA"), "speed_lora", campaign.speed_lora_path),
    ):
        if lora_path is None:
            if field == "lora":
                findings.append(Finding(topic, True, Text("none")))
            continue
        if misfit is not None and misfit.field == f"{field}.path":
            findings.append(
                Finding(topic, False, Text("{path}: {problem}", path=lora_path, problem=misfit.text), refused=True)
            )
        else:
            said = Text("{path} (hash {hash})", path=lora_path, hash=(lora_hash(lora_path) or "")[:12])
            findings.append(Finding(topic, True, said))
    return findings


def _given_models(options: list[str]) -> list[Finding]:
    """Each ``--model`` (a render model, or an edit model for retouching by instruction) described
    from its files, with its licence."""
    from visuels.inputs.model_refs import parse_model_option
    from visuels.models.reference import describe_named_model, edits_pictures

    findings = []
    for option in options:
        ref = parse_model_option(option)
        info = describe_named_model(ref, "--model", edits=edits_pictures(ref))
        findings += _model(Text("model {name}", name=option), info)
    return findings


def diagnose(output_root: Path, campaign: Path | None = None, models: list[str] | None = None) -> list[Finding]:
    found = [*_hardware(), *_versions(), *_models()]
    if campaign is not None:
        found += _campaign(campaign)
    found += _given_models(models or [])
    try:
        mounts = MOUNTS.read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux: nothing to tell
        mounts = ""
    return [*found, _charter(), _keys(), _watermark_key(), _record(output_root, mounts), _prefect()]
