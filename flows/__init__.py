"""Prefect flows and deployments: thin compositions of ``pipelines`` functions."""

import logging
import os

# Let Prefect capture the library's own log records (at INFO) in flow and task run logs.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "pipelines")
# The same library logs outside flow runs too (CLI checks, benchmarks): nothing to send then.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
logging.getLogger("pipelines").setLevel(logging.INFO)
