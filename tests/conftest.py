import os

import pytest
import torch
from hypothesis import settings

# Property tests draw the same examples on every machine and run (derandomize), so the suite
# passes or fails the same way everywhere; explore new examples with
# HYPOTHESIS_PROFILE=explore ./dev test tests/test_hardening_stability.py
settings.register_profile("suite", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


# One torch thread by default (fast and the same on every machine); .ci/run runs the LSC
# acceptance file again with STABLERNN_TEST_THREADS=2 (float sums differ per thread count).
THREADS = int(os.environ.get("STABLERNN_TEST_THREADS", "1"))


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    yield
