"""A CPU worker keeps its freed memory: a picture's arrays reuse the last picture's pages."""

import platform
import subprocess
import sys

import pytest

# A picture's worth of arrays (1080² pixels, offsets, indices), made, touched and freed five
# times; the page faults of the last four rounds are printed.
ROUNDS = """
import resource, sys
import numpy as np
from visuels._internal.allocator import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()
faults = 0
for round in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    arrays = [np.ones(size, dtype=np.uint8) for size in (4_665_600, 9_331_200, 13_996_800, 3_499_200, 4_665_600)]
    del arrays
    if round:
        faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(faults // 4)
"""


def faults_per_round(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True)
    return int(result.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's allocator only")
def test_a_worker_reuses_its_freed_memory_without_faulting() -> None:
    kept = faults_per_round("kept")
    assert kept < 100, kept  # 36 MB faulted in afresh would be about 9,000
    assert faults_per_round("default") > 10 * max(kept, 10)  # what it saves, on this C library
