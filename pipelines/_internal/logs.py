"""Keep diffusers / transformers / hub chatter (progress bars, deprecation notes) off the console."""

from __future__ import annotations

import os
import sys
import warnings


def quiet_third_party_logs() -> None:
    """Show only errors from the model libraries; our own logs say what is happening.

    Cheap to call anywhere: the libraries read the environment when they are imported, and those
    already imported are set directly (importing them just for this would cost seconds).
    """
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"diffusers\..*")
    if "diffusers" in sys.modules:
        import diffusers.utils.logging as diffusers_logging

        diffusers_logging.set_verbosity_error()
        diffusers_logging.disable_progress_bar()  # diffusers ignores the hub's setting for its own bars
    if "transformers" in sys.modules:
        import transformers.utils.logging as transformers_logging

        transformers_logging.set_verbosity_error()
        transformers_logging.disable_progress_bar()
