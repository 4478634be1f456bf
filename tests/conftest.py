import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(autouse=True)
def _torch_threads():
    """Keep tests light on the 2-core machine and deterministic."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
