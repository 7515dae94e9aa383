"""Prefect flows and deployments: thin compositions of the library's functions, and the only
place that imports Prefect (the console script, ``make serve``, the render workers)."""

import logging
import os

# Let Prefect capture the library's own log records (at INFO) in flow and task run logs.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "visuels")
# The same library logs outside flow runs too (CLI checks, benchmarks): nothing to send then.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
logging.getLogger("visuels").setLevel(logging.INFO)
