"""Python's cycle collector, held off while a whole campaign's records are read and worked on.

Records read from the database are plain dicts, lists and strings: reference counting frees them,
and they make no cycles. But while millions of them pile up, the cycle collector walks every live
object again each time their number grows by a quarter: on a region's 106,704 records (2-core
machine, Python 3.11), half of a review listing's 10 s and of the report's 26 s. Held off while they
are read and worked on, it walks them once after: what the block made is then in the oldest
generation (left in the youngest, the collector would walk it three times, once per generation).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Objects a block made (net of those it freed) past which they are collected at once after it: a
# region's plan makes a million; a commune's campaign, a few thousand, whose walk can wait.
MANY_OBJECTS = 100_000


@contextmanager
def cycles_collected_after() -> Iterator[None]:
    """Hold off the cycle collector inside the block; the outermost block (the one that found it
    running) starts it again. Another thread's block ending first starts it early: slower, not wrong."""
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()
            if gc.get_count()[0] > MANY_OBJECTS:
                gc.collect()
