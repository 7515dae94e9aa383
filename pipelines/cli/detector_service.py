"""``visuels detector``: serve the public detector (``serve``), and read the wrong-label reports it
received (``reports``, ``reports --close N --answer TEXT``)."""

from __future__ import annotations

import argparse

from visuels._internal.i18n import user_language, words
from visuels.cli.console import console, database_url_option, open_record
from visuels.errors import EXIT_FINDING, EXIT_OK, Text, VisuelsError

# A report's kind and state as the detector's report page says them, and its optional fields.
REPORT_KINDS = {
    "not_ai": Text("labelled as AI-made, but it is not"),
    "unlabelled": Text("AI-made by the region, but not labelled"),
    "other": Text("something else"),
}
REPORT_STATES = {"open": Text("open"), "closed": Text("closed")}
REPORT_FIELDS = {"sha256": Text("SHA-256"), "contact": Text("contact"), "answer": Text("answer")}


def serve(args: argparse.Namespace) -> int:
    import uvicorn
    from visuels._internal.web_guard import is_loopback
    from visuels.cli.detecting import deep_reader
    from visuels.detector.app import DetectorService, Limits, create_app
    from visuels.inputs.charter import load_charter
    from visuels.marking.keys import TRUST_ANCHORS, detector_key, keys_dir
    from visuels.marking.watermark_keys import known_keys

    if not is_loopback(args.host):
        # Public, yet never on an open port of its own: the region's web server (TLS, its name)
        # publishes it, and the app answers only to the names given with --allow-host.
        raise VisuelsError(
            "visuels detector serve",
            "--host",
            "the detector listens on this machine only (127.0.0.1): publish it through your web server"
            " and give its public name with --allow-host",
        )
    database_url = database_url_option(args.database)
    service = DetectorService(
        charter=load_charter(args.charter),
        trust_anchors=keys_dir() / TRUST_ANCHORS,
        keys=known_keys(keys_dir()),
        signing_key=detector_key(),
        database_url=database_url,
        limits=Limits(per_minute=args.per_minute),
        behind_proxy=bool(args.allow_host),
        deep=deep_reader(args.deep, [database_url]) if args.deep else None,
    )
    t = words(user_language())
    console.print(
        t(
            "detector on {address}, for {names} (Ctrl-C to stop)",
            address=f"http://{args.host}:{args.port}",
            names=", ".join([args.host, *args.allow_host]),
        ),
        highlight=False,
    )
    uvicorn.run(create_app(service, tuple(args.allow_host)), host=args.host, port=args.port, log_level="warning")
    return EXIT_OK


def reports(args: argparse.Namespace) -> int:
    """The open reports (all with --all); --close N --answer TEXT closes one. 1 when some are open."""
    from visuels.record.reports import close_report
    from visuels.record.reports import reports as listed

    t = words(user_language())
    database = open_record(args.database)
    try:
        if args.close is not None:
            if not args.answer:
                raise VisuelsError("visuels detector reports", "--answer", "say what was done about the report")
            if not close_report(database, args.close, args.answer):
                number = args.close
                raise VisuelsError("visuels detector reports", "--close", "no open report no. {number}", number=number)
            console.print(t("report no. {number} closed", number=args.close), highlight=False)
            return EXIT_OK
        found = listed(database, include_closed=args.all)
    finally:
        database.close()
    for report in found:
        state, kind = REPORT_STATES[report["status"]].said(t), REPORT_KINDS[report["kind"]].said(t)
        seen = t("seen: {where}", where=report["where_seen"])
        console.print(f"#{report['id']}  {report['received']}  {state}  {kind}  {seen}", highlight=False, markup=False)
        console.print(f"    {report['description']}", highlight=False, markup=False)
        for name, field in REPORT_FIELDS.items():
            if report[name]:
                line = t("{field}: {value}", field=field.said(t), value=report[name])
                console.print(f"    {line}", highlight=False, markup=False)
    open_count = sum(report["status"] == "open" for report in found)
    console.print(t.plural("1 open report", "{count} open reports", open_count), highlight=False)
    return EXIT_FINDING if open_count else EXIT_OK
