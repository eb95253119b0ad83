"""The IMAP source's output reconciliation and state file, without a server."""
import json
import tempfile
from pathlib import Path

import pytest

from dsnparse.errors import SourceError
from dsnparse.sources.imap import ImapOptions, StateDB, _reconcile_outputs, default_state_path

PREFIX = "imap://u@"


def rec(uid):
    return json.dumps({"source": f"imap://u@h/INBOX;UIDVALIDITY=1/;UID={uid}"}) + "\n"


def setup():
    d = Path(tempfile.mkdtemp())
    state = StateDB(str(d / "s.db"))
    out = d / "o.jsonl"
    out.write_text(rec(1))
    state.set_checkpoint(str(out), out.stat().st_size)
    return state, out


def test_uncommitted_and_torn_tail_is_truncated_to_checkpoint():
    state, out = setup()
    with out.open("a") as f:
        f.write(rec(2) + rec(3)[:20])             # a batch never committed, torn mid-line
    _reconcile_outputs(state, PREFIX, str(out))
    assert out.read_text() == rec(1)


def test_foreign_tail_is_not_truncated():
    state, out = setup()
    with out.open("a") as f:
        f.write(json.dumps({"source": "/some/file.eml"}) + "\n")
    with pytest.raises(SourceError, match="refusing to truncate"):
        _reconcile_outputs(state, PREFIX, str(out))


def test_state_file_is_locked_against_a_second_run():
    state, out = setup()
    with pytest.raises(SourceError, match="in use"):
        StateDB(state.path)


def test_default_state_path_and_source_url(monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", "/x")
    assert default_state_path() == "/x/dsnparse/imap-state.sqlite3"
    o = ImapOptions(host="mx.example", user="b@example", folder="Bounces/2024")
    assert o.source(7, 42) == "imap://b%40example@mx.example/Bounces/2024;UIDVALIDITY=7/;UID=42"
    assert ImapOptions(host="h", user="u", port=10993).source(1, 2).startswith("imap://u@h:10993/")


def test_folder_cannot_be_its_own_target():
    with pytest.raises(ValueError):
        ImapOptions(host="h", user="u", folder="X", processed_folder="X")
