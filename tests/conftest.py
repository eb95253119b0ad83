"""Shared test helpers: where the samples and the shared corpus are."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared"
SISIMAI = SHARED / "corpus" / "sisimai"
NOT_BOUNCES = SHARED / "corpus" / "not-bounces"


def need(path: Path) -> Path:
    """Skip the test with a clear message when a folder of ../shared is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared corpus is expected beside the project "
                    f"checkout (../shared); this test needs it")
    return path
