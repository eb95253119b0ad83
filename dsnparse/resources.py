"""Where the shipped data lives: ``rules/`` (codes.yaml, reasons.yaml, packs).

In a wheel the folder is installed as ``dsnparse/rules``; in a source checkout (or an
editable install) it is ``rules/`` beside the package.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def rules_dir() -> Path:
    """Return the directory of the shipped rule data (``Path``)."""
    here = Path(__file__).resolve().parent
    for cand in (here / "rules", here.parent / "rules"):
        if (cand / "codes.yaml").is_file():
            return cand
    return here.parent / "rules"
