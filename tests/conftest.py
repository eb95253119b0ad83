"""Shared test helpers: where the samples and the shared corpus are."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# In CI (DSNPARSE_CI=1, set by .ci/run) the property tests draw the same examples on every
# run: a CI result says something about the change, not about the draw.  Elsewhere they
# explore afresh each time (and keep what fails in .hypothesis/).
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("DSNPARSE_CI"):
    settings.load_profile("ci")

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


_CACHE_DIR = None


def pytest_configure(config):
    """The run's pack caches go to a temporary directory (removed at the end), not the
    user's cache: tests load packs from hundreds of temporary rule directories."""
    global _CACHE_DIR
    if "DSNPARSE_CACHE_DIR" not in os.environ:
        _CACHE_DIR = tempfile.mkdtemp(prefix="dsnparse-test-cache-")
        os.environ["DSNPARSE_CACHE_DIR"] = _CACHE_DIR


def pytest_unconfigure(config):
    if _CACHE_DIR is not None:
        os.environ.pop("DSNPARSE_CACHE_DIR", None)
        shutil.rmtree(_CACHE_DIR, ignore_errors=True)
