"""Marking outputs as AI-generated (EU AI Act, Art. 50): the invisible watermark, IPTC XMP, the
signed C2PA manifest, the signing keys, and signed checkpoints of the ledger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visuels._internal.faces import lazy_attributes

if TYPE_CHECKING:
    from visuels.marking.checkpoints import checkpoint_problems, write_checkpoint
    from visuels.marking.keys import SigningFiles, init_local_chain, signing_files
    from visuels.marking.mark import MarkingContext, write_marked

__all__ = [
    "MarkingContext",
    "SigningFiles",
    "checkpoint_problems",
    "init_local_chain",
    "signing_files",
    "write_checkpoint",
    "write_marked",
]
__getattr__ = lazy_attributes(
    __name__,
    {
        "mark": ["MarkingContext", "write_marked"],
        "keys": ["SigningFiles", "signing_files", "init_local_chain"],
        "checkpoints": ["write_checkpoint", "checkpoint_problems"],
    },
)
