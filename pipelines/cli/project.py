"""The commands on a project: ``check`` its inputs, ``keys``, ``ledger``, ``doctor``, the ``studio``,
``train`` the charter's LoRA."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from visuels._internal.atomic import check_output_folder
from visuels._internal.i18n import Words, user_language, words
from visuels.cli.console import console, errors, open_record, record_folder
from visuels.errors import EXIT_BAD_INPUT, EXIT_FINDING, EXIT_OK, CampaignError, Text, VisuelsError

if TYPE_CHECKING:
    from visuels.inputs.campaign import Campaign
    from visuels.inputs.charter import Charter
    from visuels.planning.photo_sizes import SoftPhoto
    from visuels.studio.reviews import ReviewBackend
    from visuels.training.run import TrainingSummary

Trainer = Callable[[str, str, dict, str, str], "TrainingSummary"]  # "": no resume, the default LoRA folder
CHECKED_SUFFIXES = (".yaml", ".yml", ".csv", "")  # and a charter's folder


def training_options(t: Words) -> dict[str, tuple[type, str]]:
    """``visuels train``'s options: their type and explanation, in the words of ``t``."""
    return {
        "steps": (int, t("optimiser steps, 1-100,000 (default: 500)")),
        "rank": (int, t("LoRA rank, 1-256: larger learns more, and overfits sooner (default: 8)")),
        "alpha": (float, t("LoRA alpha, > 0 (default: the rank)")),
        "learning_rate": (float, t("learning rate, > 0 and <= 1 (default: 1e-4)")),
        "lr_schedule": (str, t("constant, cosine or linear (default: constant)")),
        "resolution": (int, t("training picture side, a multiple of 64 from 64 to 2048 (default: 256)")),
        "batch_size": (int, t("pictures per step, 1-64 (default: 1)")),
        "gradient_accumulation": (int, t("steps whose gradients are summed before an update, 1-64 (default: 1)")),
        "gradient_checkpointing": (bool, t("trade compute for memory (large models on small GPUs)")),
        "train_text_encoder": (
            bool,
            t("also train a LoRA on the text encoder's attention (slower: embeddings each step)"),
        ),
        "min_snr_gamma": (float, t("Min-SNR loss weighting gamma, > 0 (default: 5)")),
        "seed": (int, t("random seed, >= 0 (default: 0)")),
        "checkpoint_every": (int, t("save a resumable checkpoint every N steps (default: 100)")),
        "sample_steps": (
            int,
            t("denoising steps of the validation and evaluation pictures, 1-200 (default: the model's own)"),
        ),
    }


def _describe_campaign(campaign: Campaign, t: Words) -> str:
    spec = campaign.spec
    versions = sum(len(spec.audience_languages(name)) for name in spec.audiences)
    count = len(campaign.communes) * versions * len(spec.formats)
    photos = sum(1 for commune in campaign.communes if commune.photos)
    from_photos = (
        t.plural(", 1 commune rendered from its photos", ", {count} communes rendered from their photos", photos)
        if photos and spec.photos is not None
        else ""
    )
    factors = (
        t.plural("1 commune", "{count} communes", len(campaign.communes)),
        t.plural("1 audience-language", "{count} audience-languages", versions),
        t.plural("1 format", "{count} formats", len(spec.formats)),
    )
    described = t.plural(
        "campaign '{name}': {factors} = 1 image",
        "campaign '{name}': {factors} = {count} images",
        count,
        name=spec.name,
        factors=" x ".join(factors),
    )
    return described + from_photos


def _lint(campaign: Campaign, t: Words) -> int:
    """Print the campaign's bias and stereotype findings; 1 if there is any."""
    from visuels.planning.fairness import said
    from visuels.planning.lint import lint_campaign

    report = lint_campaign(campaign)
    for finding in report.findings:
        console.print(f"    {said(finding.message(), t)}", highlight=False, markup=False)
    if report.from_templates:
        more = t.plural(
            "... and 1 job holding those template terms",
            "... and {count} jobs holding those template terms",
            report.from_templates,
        )
        console.print(f"    {more}", highlight=False)
    if report.held or report.for_review:
        held = t.plural("1 job held back", "{count} jobs held back", report.held) + t.plural(
            ", 1 rendered and marked for review", ", {count} rendered and marked for review", report.for_review
        )
        console.print(f"    {held}", highlight=False)
    return EXIT_FINDING if report.findings else EXIT_OK


def _check_file(path: Path) -> int:
    """Validate one file and print a line describing it (a campaign: and its review findings)."""
    from visuels.inputs.campaign import load_campaign
    from visuels.inputs.charter import load_charter
    from visuels.inputs.communes import load_communes, referential_findings
    from visuels.inputs.logos import SVG_SUFFIXES
    from visuels.inputs.photos import check_decodes
    from visuels.inputs.yamlfiles import read_yaml_mapping

    t = words(user_language())
    if path.suffix.lower() in SVG_SUFFIXES:
        return _check_template(path, t)
    if path.suffix.lower() not in CHECKED_SUFFIXES and not path.is_dir():
        raise VisuelsError(
            path,
            None,
            "not a file `visuels check` reads: charters and campaigns (.yaml), communes files (.csv), templates (.svg)",
        )
    if path.suffix.lower() == ".csv":
        communes = load_communes(path, against_referential=False)
        check_decodes(photo for commune in communes for photo in commune.photos)  # every one, asked for
        findings = referential_findings(communes)  # one line each, the blocking ones as errors
        for finding in findings:
            line = f"{path}: line {finding.line}, {finding.field}: {finding.message.said(t)}"
            if finding.blocking:
                errors.print(t("error: {message}", message=line), highlight=False, markup=False)
            else:
                console.print(f"    {line}", highlight=False, markup=False)
        if any(finding.blocking for finding in findings):
            return EXIT_BAD_INPUT
        departments = len({c.department for c in communes})
        described = t(
            "communes: {communes} in {departments}",
            communes=t.plural("1 commune", "{count} communes", len(communes)),
            departments=t.plural("1 department", "{count} departments", departments),
        )
        console.print(f"{t('ok')}  " + t("{path}: {kind}", path=path, kind=described), highlight=False)
        return EXIT_FINDING if findings else EXIT_OK
    if path.is_dir() or read_yaml_mapping(path, CampaignError).get("palette") is not None:
        charter = load_charter(path)
        spec = charter.spec
        description = t(
            "charter '{name}': {colours} colours, 3 logos, font {font}",
            name=spec.name,
            colours=len(spec.palette),
            font=charter.font.name,
        )
        if charter.templates:
            sets = ", ".join(
                t.plural("{name} (1 format)", "{name} ({count} formats)", len(files), name=name)
                for name, files in charter.templates.items()
            )
            description += t(", templates: {sets}", sets=sets)
        console.print(f"{t('ok')}  " + t("{path}: {kind}", path=path, kind=description), highlight=False)
        findings = [
            t("{field}: {value}", field=template.path.name, value=finding.said(t))
            for files in charter.templates.values()
            for template in files.values()
            for finding in template.findings
        ] + _training_set_findings(charter, t)
        for finding in findings:
            console.print(f"    {finding}", highlight=False, markup=False)
        return EXIT_FINDING if findings else EXIT_OK
    campaign = load_campaign(path)
    _check_layout(campaign)
    soft_photos = _check_on_its_model(campaign)
    console.print(
        f"{t('ok')}  " + t("{path}: {kind}", path=path, kind=_describe_campaign(campaign, t)), highlight=False
    )
    for soft in soft_photos:
        console.print(f"    {soft.where}: {soft.message().said(t)}", highlight=False, markup=False)
    return max(_lint(campaign, t), EXIT_FINDING if soft_photos else EXIT_OK)


def _check_template(path: Path, t: Words) -> int:
    """A designer's template, checked with the charter that names it (its font, palette, label and
    formats): one line per layout and format it serves, then its findings."""
    from visuels.inputs.charter import charter_naming, load_charter

    if not path.is_file():
        raise VisuelsError(path, None, "file not found")
    charter = load_charter(charter_naming(path))
    status = EXIT_OK
    for layout, files in charter.templates.items():
        for template in files.values():
            if template.path.resolve() != path.resolve():
                continue
            described = t(
                "template of layout '{layout}' for {format} ({width}x{height}), slots {slots}, with charter {charter}",
                layout=layout,
                format=template.format_name,
                width=template.width,
                height=template.height,
                slots=", ".join(template.slots),
                charter=charter.path,
            )
            console.print(f"{t('ok')}  " + t("{path}: {kind}", path=path, kind=described), highlight=False)
            for finding in template.findings:
                console.print(f"    {finding.said(t)}", highlight=False, markup=False)
                status = EXIT_FINDING
    return status


def _check_on_its_model(campaign: Campaign) -> list[SoftPhoto]:
    """What a render would refuse of the campaign on its model, as render plans it: settings the
    model's family cannot take, photo uses it cannot serve, its licence; and the photos it would
    enlarge until they look soft. The model's files are read, never loaded; the demo model once it
    is built (a first render or `visuels demo`)."""
    from visuels.inputs.model_refs import DemoModelRef
    from visuels.models.reference import demo_built, describe_model
    from visuels.planning.jobs import expand_jobs
    from visuels.planning.photo_sizes import soft_photos

    if isinstance(campaign.model, DemoModelRef) and not demo_built():
        return []
    jobs = expand_jobs(campaign, describe_model(campaign.model, source=str(campaign.path)), "auto")
    return soft_photos(campaign, jobs)


def _training_set_findings(charter: Charter, t: Words) -> list[str]:
    """What `visuels train` would refuse in the charter's references (a caption missing, a picture
    too small at the default resolution), every one: findings, as rendering does not need them."""
    from visuels.training.dataset import DEFAULT_RESOLUTION, training_set_problems

    return [
        t("references: {problem} (`visuels train` would stop there)", problem=problem.said(t))
        for problem in training_set_problems(charter.references, DEFAULT_RESOLUTION)
    ]


def _check_layout(campaign: Campaign) -> None:
    """Every text of a campaign laid out in templates fits its slot, as a render would check."""
    from visuels.planning.jobs import job_texts
    from visuels.planning.layout_check import check_layout

    checked: set[tuple] = set()
    for text in job_texts(campaign) if campaign.spec.layout else ():
        template = campaign.charter.template(campaign.spec.layout, text.format_name)
        if template is not None:
            check_layout(campaign, template, text, checked)


def check(files: Sequence[Path]) -> int:
    """0: every file valid, no review finding; 1: valid, with review findings; 2: a file is invalid."""
    status = 0
    for given in files:
        try:
            for path in _checked_in(given):
                try:
                    status = max(status, _check_file(path))
                except VisuelsError as exc:
                    status = max(status, _said(exc))
        except VisuelsError as exc:
            status = max(status, _said(exc))
    return status


def _checked_in(path: Path) -> list[Path]:
    """What checking ``path`` checks: the path, or for a folder holding no charter.yaml (a
    ``campaigns/`` folder), each campaign in it, as the nightly renders them."""
    from visuels.inputs.charter import CHARTER_FILE
    from visuels.planning.request import campaign_files

    if not path.is_dir() or (path / CHARTER_FILE).exists():
        return [path]
    campaigns = campaign_files(path)
    if not campaigns:
        raise VisuelsError(path, None, "a folder with no charter.yaml and no campaign (.yaml) in it")
    return campaigns


def _said(exc: VisuelsError) -> int:
    t = words(user_language())
    errors.print(t("error: {message}", message=exc.said(t)), highlight=False, markup=False)
    return exc.exit_code


def studio(args: argparse.Namespace, reviews: ReviewBackend | None) -> int:
    import uvicorn
    from visuels._internal.web_guard import is_loopback, new_token
    from visuels.config import default_charter
    from visuels.inputs.charter import load_charter
    from visuels.marking.keys import signing_files
    from visuels.models.devices import check_device
    from visuels.record.database import Database, database_url
    from visuels.studio.app import Studio, create_app

    output_root = args.output_dir.resolve()
    check_output_folder(output_root, "--output-dir")  # its record is made there, and retouches written
    check_device(args.device)  # at start, not at a designer's first retouch
    edit_model = None
    if args.edit_model:  # described (and its licence checked) now, not at the first retouch
        from visuels.review.retouch import instruct_model

        edit_model = instruct_model(args.edit_model)
    studio = Studio(
        output_root=output_root,
        database=Database(database_url(output_root)),
        charter=load_charter(args.charter or default_charter()),
        signing=signing_files(),
        device=args.device,
        reviews=reviews,
        edit_model=edit_model,
        charter_given=args.charter is not None,
    )
    every_address = args.host in ("0.0.0.0", "::")
    hosts = [*args.allow_host, *([] if is_loopback(args.host) or every_address else [args.host])]
    # Beyond loopback, other people's browsers can reach it: only those given the token get in.
    token = None if is_loopback(args.host) else new_token()
    address = f"http://{'127.0.0.1' if every_address else args.host}:{args.port}"
    shown = f"[bold]{address}{f'/?token={token}' if token else ''}[/bold]"
    t = words(user_language())
    console.print(
        t("studio on {address} for {folder} (Ctrl-C to stop)", address=shown, folder=output_root), highlight=False
    )
    try:
        uvicorn.run(create_app(studio, hosts, token), host=args.host, port=args.port, log_level="warning")
    finally:
        studio.database.close()
    return EXIT_OK


def doctor(output_root: Path, campaign: Path | None, models: list[str] | None = None) -> int:
    from visuels.cli.doctor import diagnose

    t = words(user_language())
    findings = diagnose(output_root, campaign, models)
    marks = {"missing": t("missing"), "refused": t("refused"), "note": t("note"), "ok": t("ok")}
    width = max(len(mark) for mark in marks.values()) + 1
    for finding in findings:
        kind = ("refused" if finding.refused else "missing") if not finding.ok else "note" if finding.note else "ok"
        colour = {"missing": "red", "refused": "red", "note": "yellow", "ok": "green"}[kind]
        console.print(f"[{colour}]{marks[kind].ljust(width)}[/{colour}]", end="")
        line = t("{field}: {value}", field=finding.topic.said(t), value=finding.text.said(t))
        console.print(line, highlight=False, markup=False)
    return EXIT_OK if all(finding.ok for finding in findings) else EXIT_FINDING


def keys(action: str, folder: Path | None) -> int:
    """init: the signing chain and a first watermark key, each unless there; rotate: a new
    watermark key; list: the watermark keys' ids, newest last (never the keys)."""
    from visuels.marking.keys import SIGNER_KEY, SigningError, init_local_chain, keys_dir
    from visuels.marking.watermark_keys import WATERMARK_KEYS, add_key, ensure_key, ring

    t = words(user_language())
    if action in ("init", "rotate"):  # before a key is made: a chain half-written is worse than none
        check_output_folder(folder or keys_dir(), "--dir" if folder else "VISUELS_KEYS_DIR", Text("keys folder"))
    folder = folder or keys_dir()
    if action == "rotate":
        key = add_key(folder)
        console.print(t("new watermark key {id}: it marks from now on; the older ones still detect", id=key.id))
    elif action == "list":
        held = ring(folder)
        for key in held:
            console.print(f"{key.id}  {key.created}", highlight=False)
        if not held:
            console.print(t("no watermark key in {folder}: `visuels keys init` makes one", folder=folder))
    elif (folder / SIGNER_KEY).exists():  # init, on a folder from before watermark keys
        if not ensure_key(folder):
            raise SigningError(
                folder / SIGNER_KEY,
                None,
                "a signing key already exists here; not overwritten (for a new chain, move this folder aside first)",
            )
        console.print(t("watermark key {id} added in {folder}", id=ring(folder)[-1].id, folder=folder / WATERMARK_KEYS))
    else:
        files = init_local_chain(folder)
        console.print(
            t(
                "local signing chain and watermark key in {folder} (keys mode 0600); trust anchor: {anchor}",
                folder=files.chain.parent,
                anchor=files.trust_anchors,
            ),
            highlight=False,
        )
    return EXIT_OK


def ledger_verify(database_option: str | None) -> int:
    from visuels.marking.checkpoints import checkpoint_problems
    from visuels.marking.keys import SIGNER_KEY, keys_dir, signing_files
    from visuels.record.database import display_url
    from visuels.record.ledger import verify_chain

    database = open_record(database_option)
    try:
        rows, broken = verify_chain(database)
        signing = signing_files(to_sign=False) if (keys_dir() / SIGNER_KEY).exists() else None
        problems = checkpoint_problems(database, record_folder(database), signing)
    finally:
        database.close()
    where = display_url(database.url)
    if broken is not None:
        problems.insert(0, Text("row {row}: hash chain broken (edited or deleted rows)", row=broken))
    t = words(user_language())
    for problem in problems:
        errors.print(t("error: {message}", message=f"{where}: {problem.said(t)}"), highlight=False, markup=False)
    if problems:
        return EXIT_FINDING
    console.print(
        t(
            "ok  {where}: {rows}, hash chain intact, as its signed checkpoints say",
            where=where,
            rows=t.plural("1 row", "{count} rows", rows),
        ),
        highlight=False,
    )
    return EXIT_OK


def train(args: argparse.Namespace, train: Trainer) -> int:
    from pydantic import ValidationError
    from visuels.inputs.yamlfiles import field_path, first_problem
    from visuels.training.trainer import TrainingConfig

    options = {name: getattr(args, name) for name in training_options(words("en")) if getattr(args, name) is not None}
    from visuels.inputs.model_refs import parse_model_option
    from visuels.training.run import check_training_inputs

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
    t = words(user_language())
    values = {
        "steps": summary.steps,
        "first": summary.first_loss,
        "last": summary.last_loss,
        "drop": abs(summary.loss_drop),
        "without": summary.colour_distance_without_lora,
        "with_lora": summary.colour_distance_with_lora,
    }
    done = (  # a short run's loss may end higher than it began
        t(
            "done: {steps} steps, loss {first:.4f} -> {last:.4f} ({drop:.1%} lower); colour distance to the"
            " references {without:.1f} -> {with_lora:.1f}",
            **values,
        )
        if summary.loss_drop >= 0
        else t(
            "done: {steps} steps, loss {first:.4f} -> {last:.4f} ({drop:.1%} higher); colour distance to the"
            " references {without:.1f} -> {with_lora:.1f}",
            **values,
        )
    )
    console.print(done, style="green", highlight=False, markup=False)
    console.print(t("LoRA in {folder}", folder=summary.folder), highlight=False, markup=False)
    return EXIT_OK
