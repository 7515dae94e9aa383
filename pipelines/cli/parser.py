"""The command line's parser, speaking the user's language: its help (``usage:``, group titles,
``-h``) and its own error lines, which argparse writes in English before ``error`` sees them."""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

from visuels._internal.i18n import Words
from visuels.errors import Text

# What argparse (Python 3.11) and an option's type (``positive``) say of a bad option, as
# patterns the catalogue translates: argparse hands ``error`` finished English sentences, so
# they are recognised by these shapes ({problem} is itself one of them).
OPTION_MESSAGES = (
    Text("argument {argument}: {problem}"),
    Text("the following arguments are required: {names}"),
    Text("invalid choice: {value} (choose from {choices})"),
    Text("expected one argument"),
    Text("expected at least one argument"),
    Text("expected at most one argument"),
    Text("unrecognized arguments: {values}"),
    Text("invalid {kind} value: {value}"),
    Text("ambiguous option: {option} could match {matches}"),
    Text("one of the arguments {names} is required"),
    Text("not allowed with argument {name}"),
    Text("ignored explicit argument {value}"),
    Text("'{value}' is not a whole number"),
    Text("'{value}': write the number with a point, {number}"),
    Text("'{value}' is not a number"),
    Text("{number}: must be at least 1"),
    Text("{number}: a port is a number from 1 to 65535"),
    Text("'{value}' names nothing: give names separated by commas"),
    Text("empty: give it a value"),
)


def _shape(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"{(\w+)}", pattern)  # text, name, text, name, ..., text
    return re.compile(
        "".join(re.escape(part) if index % 2 == 0 else f"(?P<{part}>.+?)" for index, part in enumerate(parts)) + "$"
    )


def said_in(message: str, t: Words) -> str:
    """An English option error in the language of ``t`` (as it was, when its shape is unknown)."""
    for text in OPTION_MESSAGES:
        found = _shape(text.pattern).match(message)
        if found:
            values = found.groupdict()
            if "problem" in values:
                values["problem"] = said_in(values["problem"], t)
            return t(text.pattern, **values)
    return message


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help and errors are in the words of ``t`` (``words=``); the
    commands' parsers (``add_subparsers().add_parser``) are made the same way."""

    def __init__(self, *args: object, words: Words, **kwargs: object) -> None:
        t = words

        class Formatter(argparse.HelpFormatter):
            def add_usage(self, usage, actions, groups, prefix=None) -> None:  # type: ignore[no-untyped-def]
                super().add_usage(usage, actions, groups, t("usage: ") if prefix is None else prefix)

            def start_section(self, heading: str | None) -> None:
                # argparse puts the colon after a heading itself: French spaces it ("options :").
                punctuated = t("{heading}:", heading=heading).removesuffix(":") if heading else heading
                super().start_section(punctuated)

        super().__init__(*args, formatter_class=Formatter, add_help=False, **kwargs)  # type: ignore[arg-type]
        self.words = t
        self._positionals.title = t("positional arguments")
        self._optionals.title = t("options")
        self.add_argument("-h", "--help", action="help", help=t("show this help message and exit"))

    def error(self, message: str) -> NoReturn:
        t = self.words
        self.print_usage(sys.stderr)
        self.exit(2, t("{prog}: error: {message}", prog=self.prog, message=said_in(message, t)) + "\n")
