"""A run that fails on bad input or a known fault says so in one line, its state message.

The flow returns a Failed state carrying the error; Prefect's engine then raises it again in the
flow run's process and logs it with a traceback, under "unexpected exception". For our own
errors (:class:`VisuelsError`) that traceback says nothing the state message does not, and
fills the designer's log view: this filter drops it. Any other exception keeps its traceback.
"""

from __future__ import annotations

import logging

from visuels.errors import VisuelsError

FLOW_RUN_LOGGER = "prefect.flow_runs"  # where the engine logs a flow run's final exception


class _KnownFailures(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], VisuelsError))


def log_known_failures_in_one_line() -> None:
    """Install the filter on the flow runs' logger of this process (once, however often called)."""
    logger = logging.getLogger(FLOW_RUN_LOGGER)
    if not any(isinstance(existing, _KnownFailures) for existing in logger.filters):
        logger.addFilter(_KnownFailures())
