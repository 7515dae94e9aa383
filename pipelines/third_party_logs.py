"""Keep diffusers / transformers / hub chatter (progress bars, deprecation notes) off the console."""

from __future__ import annotations

import os
import warnings


def quiet_third_party_logs() -> None:
    """Show only errors from the model libraries; our own logs say what is happening."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # Read by transformers at import: notes about optional image-processing backends.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"diffusers\..*")
