"""The ``visuels`` command line: each command's options, and ``main``, which runs the chosen one.

Every command ends in one line on failure and an exit code that means one thing
(``visuels.errors``). Rendering and training go through the Prefect flows, which the console
script (``visuels.flows.cli``) hands in as ``Flows``: the library never imports Prefect.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from visuels._internal.i18n import Words, user_language, words
from visuels._internal.logs import quiet_third_party_logs
from visuels.cli import detecting, detector_service, files, project, rendering
from visuels.cli.console import (
    a_path,
    errors,
    names,
    not_empty,
    number,
    port,
    positive,
    say_refused,
    settings_refused,
    whole_number,
)
from visuels.cli.parser import Parser
from visuels.config import default_charter
from visuels.errors import VisuelsError
from visuels.inputs.file_names import NAME_MOST_BYTES

if TYPE_CHECKING:
    from visuels.cli.project import Trainer
    from visuels.cli.rendering import RenderFlow
    from visuels.studio.reviews import ReviewBackend

SYMLINK_LOOP = "Symlink loop from "  # how pathlib (Python 3.11, 3.12) says a link leads back to itself


@dataclass(frozen=True)
class Flows:
    """What the console script hands in: the render and training flows, the reviews' backend."""

    render: RenderFlow | None = None
    train: Trainer | None = None
    reviews: ReviewBackend | None = None


def _render(args: argparse.Namespace, flows: Flows) -> int:
    request = rendering.render_request(args, rendering.run_settings(args))
    return rendering.render(request, _flow(flows.render, args.command), args.verbose)


def _demo(args: argparse.Namespace, flows: Flows) -> int:
    requests = rendering.demo_requests(args)  # bad options refused before anything is written
    rendering.ensure_demo_keys()
    return max(rendering.render(request, _flow(flows.render, args.command), args.verbose) for request in requests)


def _retouch(args: argparse.Namespace, flows: Flows) -> int:
    return files.retouch(args)


def _train(args: argparse.Namespace, flows: Flows) -> int:
    return project.train(args, _flow(flows.train, args.command))


def _detect(args: argparse.Namespace, flows: Flows) -> int:
    if args.check is not None:
        return detecting.check(args.check)
    if not args.files:
        raise VisuelsError("visuels detect", "FILE", "give the pictures to look at (or --check RESULT.json)")
    return detecting.detect(args.files, args.charter, args.json, args.deep)


def _flow(flow, command: str):
    if flow is None:
        raise VisuelsError("visuels", command, "it needs the Prefect flows: run the `visuels` command")
    return flow


def _no_action(command: argparse.ArgumentParser, actions: str, t: Words) -> int:
    """A command that needs an action was given none: say which there are (exit 2)."""
    command.error(t("say what to do: {actions}", actions=actions))  # exits with 2


# Adds one command to ``visuels`` (its name, and the line ``visuels -h`` shows for it); returns its parser.
CommandMaker = Callable[[str, str], argparse.ArgumentParser]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """Every command, its options, and its handler (``handler``: what ``main`` runs), in the order
    ``visuels -h`` lists them."""
    t = words(user_language())
    parser = Parser(prog="visuels", description=t("Per-commune campaign visuals, marked as AI-generated."), words=t)
    # The installed package's version (what a bug report needs), as pip and the wheel know it.
    parser.add_argument(
        "--version", action="version", version=f"visuels {version('visuels')}", help=t("show visuels' version and exit")
    )
    commands = parser.add_subparsers(dest="command", required=True, title=t("commands"))

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=_described(summary), words=t)

    database_help = t(
        "the database of record: a SQLAlchemy URL, a SQLite file or the output folder holding it"
        " (default: $VISUELS_DATABASE_URL, else outputs/visuels.sqlite)"
    )
    _add_campaign_commands(command, t)
    _add_report_commands(command, t)
    _add_detection_commands(command, t, database_help)
    _add_marking_commands(command, t, database_help)
    _add_retouching_commands(command, t, database_help)
    _add_studio_command(command, t)
    _add_machine_commands(command, t, database_help)
    return parser, commands.choices


def _described(summary: str) -> str:
    """A command's description (``visuels NAME -h``): the line ``visuels -h`` shows for it, as a sentence."""
    return summary[0].upper() + summary[1:] + "."


def _add_campaign_commands(command: CommandMaker, t: Words) -> None:
    """check, render, demo: a campaign from its files to its pictures."""
    check = command("check", t("validate charters, campaigns or communes CSV files"))
    check.add_argument("files", nargs="+", type=a_path, metavar="FILE")
    check.set_defaults(handler=lambda args, flows: project.check(args.files))

    def add_render_options(options: argparse.ArgumentParser) -> None:
        options.add_argument(
            "--output-dir", type=not_empty, default="outputs", help=t("where to write (default: ./outputs)")
        )
        options.add_argument(
            "--batch-size", type=positive, help=t("images per model call (default: 16 on a GPU, else 4)")
        )
        options.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], default="auto")
        options.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16", "float8"], default="auto")
        options.add_argument(
            "--cpu-workers", type=positive, help=t("processes that finish the pictures (default: by device)")
        )
        options.add_argument(
            "--compile", action="store_true", help=t("torch.compile the model (faster on a GPU after a minute)")
        )
        options.add_argument(
            "-v", "--verbose", action="store_true", help=t("show the flow's log lines (Prefect's, each task's)")
        )

    def add_selection_options(options: argparse.ArgumentParser) -> None:
        options.add_argument(
            "--audiences", type=names, help=t("comma-separated, some of the campaign's (default: all)")
        )
        options.add_argument(
            "--formats",
            type=names,
            help=t("comma-separated, some of the campaign's, e.g. instagram_square (default: all)"),
        )

    render = command("render", t("render a campaign through the Prefect flow"))
    render.add_argument("campaign", type=a_path, metavar="CAMPAIGN.yaml")
    render.add_argument(
        "--communes", type=names, help=t("comma-separated names or INSEE codes, a subset of the campaign's")
    )
    render.add_argument("--max-communes", type=positive, help=t("only the first N selected communes"))
    render.add_argument(
        "--model",
        type=not_empty,
        help=t("override the campaign's model: demo | DIR | FILE.safetensors::CONFIG_DIR | hub:OWNER/NAME"),
    )
    add_selection_options(render)
    add_render_options(render)
    render.set_defaults(handler=_render)

    demo = command("demo", t("render the two sample campaigns for a few communes with the demo model"))
    demo.add_argument(
        "--communes",
        type=names,
        help=t(
            "comma-separated, some of the demo's: {communes} (default: all)",
            communes=", ".join(rendering.DEMO_COMMUNES),
        ),
    )
    add_selection_options(demo)
    add_render_options(demo)
    demo.set_defaults(handler=_demo)


def _add_report_commands(command: CommandMaker, t: Words) -> None:
    """report, baseline: a rendered campaign's report, from its record."""
    report = command("report", t("write a campaign's report again from its record (after retouches, edits or reviews)"))
    report.add_argument("campaign", type=a_path, metavar="CAMPAIGN.yaml")
    report.add_argument(
        "--output-dir", type=not_empty, default="outputs", help=t("where it was rendered (default: ./outputs)")
    )
    report.set_defaults(handler=lambda args, flows: rendering.report(args))

    baseline = command(
        "baseline", t("fix again the campaign's style baseline, which off-tone pictures are measured against")
    )
    baseline.add_argument("campaign", type=a_path, metavar="CAMPAIGN.yaml")
    baseline.add_argument(
        "--communes",
        type=names,
        help=t("from these communes' pictures only, comma-separated (default: every recorded picture)"),
    )
    baseline.add_argument(
        "--output-dir", type=not_empty, default="outputs", help=t("where it was rendered (default: ./outputs)")
    )
    baseline.set_defaults(handler=lambda args, flows: rendering.baseline(args))


def _add_detection_commands(command: CommandMaker, t: Words, database_help: str) -> None:
    """detect, detector: whether pictures carry the marks, for anyone."""
    detect = command("detect", t("whether pictures carry this deployment's AI marks, from the files alone"))
    detect.add_argument("files", nargs="*", type=a_path, metavar="FILE", help=t("pictures, or folders of pictures"))
    detect.add_argument("--charter", type=a_path, default=default_charter(), help=t("charter whose label to look for"))
    detect.add_argument(
        "--json", type=a_path, metavar="RESULT.json", help=t("also write the result, signed by the detector's key")
    )
    detect.add_argument("--check", type=a_path, metavar="RESULT.json", help=t("check a signed result instead"))
    detect.add_argument(
        "--deep",
        type=not_empty,
        metavar="MODEL",
        help=t(
            "also read the starting-noise mark by inverting MODEL (demo | DIR | …): slower, needs its files;"
            " a worn mark is confirmed against the ledger of each file's record, where it is on this machine"
        ),
    )
    detect.set_defaults(handler=_detect)

    detector = command("detector", t("the public detector: a web page and an API anyone can check pictures with"))
    detector_actions = detector.add_subparsers(dest="action", required=True, title=t("actions"))
    serve_summary = t("serve the detector on this machine, for your web server to publish")
    detector_serve = detector_actions.add_parser(
        "serve", help=serve_summary, description=_described(serve_summary), words=t
    )
    detector_serve.add_argument("--port", type=port, default=8790, help=t("(default: 8790)"))
    detector_serve.add_argument("--host", default="127.0.0.1", help=t("the address to listen on (default: 127.0.0.1)"))
    detector_serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help=t("the public name your web server gives it (repeatable); its X-Forwarded-For is then trusted"),
    )
    detector_serve.add_argument(
        "--charter", type=a_path, default=default_charter(), help=t("charter whose label to look for")
    )
    detector_serve.add_argument(
        "--database", type=not_empty, help=t("where wrong-label reports are kept (the database of record)")
    )
    detector_serve.add_argument(
        "--per-minute", type=positive, default=20, help=t("pictures a client may check per minute (default: 20)")
    )
    detector_serve.add_argument(
        "--deep",
        type=not_empty,
        metavar="MODEL",
        help=t("also read the starting-noise mark by inverting MODEL (seconds per picture: keep --per-minute low)"),
    )
    detector_serve.set_defaults(handler=lambda args, flows: detector_service.serve(args))
    reports_summary = t("the wrong-label reports the public sent")
    detector_reports = detector_actions.add_parser(
        "reports", help=reports_summary, description=_described(reports_summary), words=t
    )
    detector_reports.add_argument("--database", type=not_empty, help=database_help)
    detector_reports.add_argument("--all", action="store_true", help=t("closed ones too"))
    detector_reports.add_argument("--close", type=positive, metavar="N", help=t("close report N"))
    detector_reports.add_argument("--answer", help=t("what was done about it (with --close)"))
    detector_reports.set_defaults(handler=lambda args, flows: detector_service.reports(args))


def _add_marking_commands(command: CommandMaker, t: Words, database_help: str) -> None:
    """verify, finalize, timestamp: the marks of files, checked layer by layer and written again."""
    verify = command("verify", t("check the AI marking of files, layer by layer"))
    verify.add_argument(
        "files",
        nargs="+",
        type=a_path,
        metavar="FILE",
        help=t("pictures, or folders: every picture in them (an output folder's thumbnails/ and edges/ left out)"),
    )
    verify.add_argument("--json", action="store_true", help=t("one JSON report per file, as a list"))
    verify.add_argument("--database", type=not_empty, help=database_help)
    verify.add_argument("--charter", type=a_path, default=default_charter(), help=t("charter whose label to look for"))
    verify.add_argument(
        "--allow-untrusted",
        action="store_true",
        help=t("accept a C2PA signature by a certificate the trust anchors do not know (default: refused)"),
    )
    verify.set_defaults(
        handler=lambda args, flows: files.verify(
            args.files, args.json, args.database, args.charter, args.allow_untrusted
        )
    )

    finalize = command(
        "finalize", t("mark again files edited outside visuels (Photoshop, GIMP...) from their original")
    )
    finalize.add_argument("files", nargs="+", type=a_path, metavar="EDITED")
    finalize.add_argument(
        "--from",
        dest="original",
        type=a_path,
        metavar="ORIGINAL",
        help=t("the exported file they were edited from (default: found through each file's watermark)"),
    )
    finalize.add_argument(
        "-o",
        "--output",
        type=a_path,
        metavar="OUT",
        help=t("a file, or a folder for several (default: beside each, NAME-final.EXT)"),
    )
    finalize.add_argument("--database", type=not_empty, help=database_help)
    finalize.add_argument(
        "--charter",
        type=a_path,
        help=t(
            "the charter to check them against (default: the one each original was made with, as the record names it)"
        ),
    )
    finalize.set_defaults(handler=lambda args, flows: files.finalize(args))

    timestamp = command(
        "timestamp", t("add an RFC 3161 time-stamp to exported pictures signed without one, before publishing them")
    )
    timestamp.add_argument(
        "files",
        nargs="+",
        type=a_path,
        metavar="FILE",
        help=t(
            "exported pictures, or folders: every exported picture in them (what is not one is said and left as it is)"
        ),
    )
    timestamp.add_argument("--database", type=not_empty, help=database_help)
    timestamp.set_defaults(handler=lambda args, flows: files.timestamp(args))


def _add_retouching_commands(command: CommandMaker, t: Words, database_help: str) -> None:
    """layers, retouch: an output worked on by a designer."""
    layers = command("layers", t("a layered working file (PSD) of an output laid out in a template, for retouching"))
    layers.add_argument("files", nargs="+", type=a_path, metavar="FILE", help=t("exported files"))
    layers.add_argument("--database", type=not_empty, help=database_help)
    layers.add_argument(
        "--charter",
        type=a_path,
        help=t("the charter they were laid out with (default: the one each was made with, as the record names it)"),
    )
    layers.set_defaults(handler=lambda args, flows: files.layers(args))

    retouch = command(
        "retouch",
        t("repaint part of an output with the model that made it, or by instruction; each variant is marked again"),
    )
    retouch.add_argument("image", type=a_path, metavar="IMAGE", help=t("an exported file"))
    retouch.add_argument(
        "--mask", type=a_path, help=t("white where to repaint, black elsewhere (or painted on transparency)")
    )
    retouch.add_argument("--prompt", required=True, help=t("what to paint, or with --mode instruct what to change"))
    retouch.add_argument(
        "--mode",
        choices=["inpaint", "img2img", "instruct"],
        default="inpaint",
        help=t("instruct: an edit model (--edit-model) changes the picture as the prompt says (default: inpaint)"),
    )
    retouch.add_argument(
        "--edit-model",
        type=not_empty,
        metavar="DIR",
        help=t("an edit model's diffusers folder (Qwen-Image-Edit), for --mode instruct"),
    )
    retouch.add_argument("--steps", type=positive, help=t("denoising steps (default: the model's own)"))
    retouch.add_argument("--variants", type=positive, default=4, help=t("how many (default: 4)"))
    retouch.add_argument(
        "--strength", type=number, default=0.85, help=t("0 keeps the picture, 1 repaints (default: 0.85)")
    )
    retouch.add_argument("--seed", type=whole_number, default=0, help=t("variant i uses seed + i (default: 0)"))
    retouch.add_argument(
        "-o", "--output-dir", type=a_path, help=t("where to write the variants (default: beside IMAGE)")
    )
    retouch.add_argument(
        "--model", type=not_empty, help=t("the model that made IMAGE, if its record cannot say where it is")
    )
    retouch.add_argument(
        "--lora", type=not_empty, help=t("the LoRA that made IMAGE, if its record cannot say where it is")
    )
    retouch.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], default="auto")
    retouch.add_argument("--database", type=not_empty, help=database_help)
    retouch.add_argument(
        "--charter",
        type=a_path,
        help=t(
            "the charter to check them against (default: the one each original was made with, as the record names it)"
        ),
    )
    retouch.set_defaults(handler=_retouch)


def _add_studio_command(command: CommandMaker, t: Words) -> None:
    """studio: the designers' pages in a browser."""
    studio = command(
        "studio", t("the designers' studio in a browser: review runs, retouch outputs, finalize edited files")
    )
    studio.add_argument("--port", type=port, default=7860, help=t("(default: 7860)"))
    studio.add_argument(
        "--host",
        default="127.0.0.1",
        help=t("the address to listen on (default: 127.0.0.1, this user only); any other asks for a token"),
    )
    studio.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help=t("a name the studio is reached by besides 127.0.0.1 and localhost (repeatable)"),
    )
    studio.add_argument(
        "--output-dir", type=a_path, default=Path("outputs"), help=t("the outputs (default: ./outputs)")
    )
    studio.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], default="auto", help=t("for retouching"))
    studio.add_argument(
        "--edit-model",
        type=not_empty,
        metavar="DIR",
        help=t("an edit model's diffusers folder, to retouch by instruction"),
    )
    studio.add_argument(
        "--charter",
        type=a_path,
        help=t("the charter to check retouches against (default: each output's own, as the record names it)"),
    )
    studio.set_defaults(handler=lambda args, flows: project.studio(args, flows.reviews))


def _add_machine_commands(command: CommandMaker, t: Words, database_help: str) -> None:
    """doctor, keys, train, ledger: the machine, its keys, the charter's LoRA and the record."""
    doctor = command("doctor", t("what this machine has (GPU, versions, model, keys) and what is missing"))
    doctor.add_argument("campaign", type=a_path, nargs="?", metavar="CAMPAIGN.yaml", help=t("also its model and LoRA"))
    doctor.add_argument("--output-dir", type=a_path, default=Path("outputs"))
    doctor.add_argument(
        "--model", action="append", default=[], metavar="MODEL", help=t("also this model and its licence (repeatable)")
    )
    doctor.set_defaults(handler=lambda args, flows: project.doctor(args.output_dir, args.campaign, args.model))

    keys_actions = t(
        "init: create a local root, intermediate and signer, and a secret watermark key;"
        " rotate: a new watermark key marks from now on (the old ones still detect); list: the keys' ids"
    )
    keys = command("keys", t("signing keys for C2PA manifests, and the watermark's secret keys"))
    keys.add_argument("action", nargs="?", choices=["init", "rotate", "list"], help=keys_actions)
    keys.add_argument("--dir", type=a_path, help=t("where (default: $VISUELS_KEYS_DIR or ./keys)"))
    keys.set_defaults(
        handler=lambda args, flows: (
            project.keys(args.action, args.dir) if args.action else _no_action(keys, keys_actions, t)
        )
    )

    train = command("train", t("train the charter's style LoRA on its reference images"))
    train.add_argument("charter", type=a_path, metavar="CHARTER_DIR")
    train.add_argument(
        "--base", type=not_empty, default="demo", help=t("base model: demo or a diffusers folder (default: demo)")
    )
    train.add_argument(
        "--resume", type=not_empty, metavar="RUN", help=t("continue an interrupted run from its last checkpoint")
    )
    train.add_argument(
        "--lora-dir", type=not_empty, help=t("root of the LoRA folders (default: $VISUELS_LORA_DIR or ./lora)")
    )
    for option, (kind, explanation) in project.training_options(t).items():
        if kind is bool:
            train.add_argument(f"--{option.replace('_', '-')}", action="store_true", default=None, help=explanation)
        else:
            train.add_argument(
                f"--{option.replace('_', '-')}",
                type={float: number, int: whole_number}.get(kind, kind),
                help=explanation,
            )
    train.set_defaults(handler=_train)

    ledger_actions = t("verify: check the hash chain")
    ledger_command = command("ledger", t("the provenance ledger"))
    ledger_command.add_argument("action", nargs="?", choices=["verify"], help=ledger_actions)
    ledger_command.add_argument("--database", type=not_empty, help=database_help)
    ledger_command.set_defaults(
        handler=lambda args, flows: (
            project.ledger_verify(args.database) if args.action else _no_action(ledger_command, ledger_actions, t)
        )
    )


def offline_defaults() -> None:
    """Before any model or Prefect library is imported: no network at run time unless the user asks
    for it (HF_HUB_OFFLINE=0 for hub models), and none of their chatter."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # Prefect's usage telemetry: the server's (on a fresh embedded SQLite database its first write
    # races the migrations and prints a "database is locked" traceback) and the client's, whose
    # first-run notice would print in the middle of the first progress bar.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def main(
    argv: Sequence[str] | None = None,
    render: RenderFlow | None = None,
    train: Trainer | None = None,
    reviews: ReviewBackend | None = None,
) -> int:
    """Run the CLI; return the exit code."""
    offline_defaults()
    if refused := settings_refused():  # every VISUELS_* variable checked once, before anything reads one
        return refused
    quiet_third_party_logs()  # before the model libraries are imported: any command may build the demo model
    parser, command_parsers = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's own parser, with its own usage line
        command_parsers[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    t = words(user_language())
    try:
        return args.handler(args, Flows(render=render, train=train, reviews=reviews))
    except VisuelsError as exc:
        refused = exc
    except OSError as exc:
        if exc.errno not in (errno.ENAMETOOLONG, errno.ELOOP):
            raise  # the environment failing: someone must see where
        refused = _path_refused(exc.filename, exc.errno)
    except RuntimeError as exc:  # Python before 3.13 resolves a symbolic link loop into this
        if not str(exc).startswith(SYMLINK_LOOP):
            raise
        refused = _path_refused(str(exc).removeprefix(SYMLINK_LOOP).strip("'\""), errno.ELOOP)
    except KeyboardInterrupt:
        errors.print(t("interrupted"))
        return 130
    return say_refused(refused)


def _path_refused(path: str | Path, number: int) -> VisuelsError:
    """A path given on the command line, or made from one, that no file system call can follow:
    longer than file systems allow, or a symbolic link that leads back to itself."""
    if number == errno.ELOOP:
        return VisuelsError(path, None, "a symbolic link that leads back to itself: give the file or folder it means")
    return VisuelsError(
        path, None, "the name is too long for a file system ({most} bytes a name)", most=NAME_MOST_BYTES
    )


if __name__ == "__main__":
    sys.exit(main())
