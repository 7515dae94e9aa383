"""After rendering: reports and publishing, human review decisions, verifying a file's marks, and
derivatives (retouches and outside edits) marked again against their original.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visuels._internal.faces import lazy_attributes

if TYPE_CHECKING:
    from visuels.review.decisions import ReviewDecision, apply_review, review_listing, sync_approved
    from visuels.review.derivatives import finalize_file, mark_derivative
    from visuels.review.publish import RenderSummary, finish_render
    from visuels.review.report import Reports, write_reports
    from visuels.review.retouch import RetouchSettings, retouch
    from visuels.review.verify import verify_file

__all__ = [
    "RenderSummary",
    "Reports",
    "RetouchSettings",
    "ReviewDecision",
    "apply_review",
    "finalize_file",
    "finish_render",
    "mark_derivative",
    "retouch",
    "review_listing",
    "sync_approved",
    "verify_file",
    "write_reports",
]
__getattr__ = lazy_attributes(
    __name__,
    {
        "publish": ["finish_render", "RenderSummary"],
        "report": ["write_reports", "Reports"],
        "decisions": ["apply_review", "ReviewDecision", "review_listing", "sync_approved"],
        "verify": ["verify_file"],
        "derivatives": ["finalize_file", "mark_derivative"],
        "retouch": ["retouch", "RetouchSettings"],
    },
)
