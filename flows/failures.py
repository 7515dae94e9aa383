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
TASK_RUN_LOGGER = "prefect.task_runs"  # and a task's failed state


class _KnownFailures(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is None:
            record.exc_info = None  # a failed state logged with "its" exception, having none: "NoneType: None"
        return not (record.exc_info and isinstance(record.exc_info[1], VisuelsError))


def log_known_failures_in_one_line() -> None:
    """Install the filter on the flow and task runs' loggers of this process (once, however often called)."""
    for name in (FLOW_RUN_LOGGER, TASK_RUN_LOGGER):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, _KnownFailures) for existing in logger.filters):
            logger.addFilter(_KnownFailures())
