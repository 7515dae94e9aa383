"""Prefect flows and deployments: thin compositions of ``pipelines`` functions."""

import logging
import os

# Let Prefect capture the library's own log records (at INFO) in flow and task run logs.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "pipelines")
logging.getLogger("pipelines").setLevel(logging.INFO)
