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


# ---------------------------------------------------------------- issue 18: output owner

def test_second_state_file_cannot_share_the_output():
    """Two state files on one output would truncate each other's records: the second is
    refused before it writes anything, and the owner's records stay."""
    from dsnparse.sources.imap import _Output
    state, out = setup()
    o = ImapOptions(host="h", user="u")
    _Output(str(out), "jsonl", state, o.source_prefix(), False).close()
    other = StateDB(str(out.parent / "other.db"))
    before = out.read_bytes()
    with pytest.raises(SourceError, match="belongs to the dsnparse imap state file"):
        _Output(str(out), "jsonl", other, o.source_prefix(), False)
    assert out.read_bytes() == before
    assert (out.parent / "o.jsonl.owner").read_text().split("\t")[0] == state.id
    # the owner itself reopens it
    _Output(str(out), "jsonl", state, o.source_prefix(), False).close()


@pytest.mark.parametrize("source", [
    "imap://u@h/Other;UIDVALIDITY=1/;UID=2",        # same server and user, another folder
    "imap://u@h2/INBOX;UIDVALIDITY=1/;UID=2",       # another server
    "imap://u@h:10993/INBOX;UIDVALIDITY=1/;UID=2",  # another port
    "imap://u2@h/INBOX;UIDVALIDITY=1/;UID=2",       # another user
    "imap://u@h/INBOX2;UIDVALIDITY=1/;UID=2",       # a folder whose name extends ours
])
def test_foreign_account_or_folder_in_the_tail_is_not_truncated(source):
    state, out = setup()
    prefix = ImapOptions(host="h", user="u", folder="INBOX").source_prefix()
    assert prefix == "imap://u@h/INBOX;UIDVALIDITY="
    with out.open("a") as f:
        f.write(json.dumps({"source": source}) + "\n")
    with pytest.raises(SourceError, match="refusing to truncate"):
        _reconcile_outputs(state, (prefix,), str(out))
    # a tail of this folder (another UIDVALIDITY too) is ours and is taken back
    state2, out2 = setup()
    with out2.open("a") as f:
        f.write(json.dumps({"source": prefix + "7/;UID=9"}) + "\n" + rec(3)[:10])
    _reconcile_outputs(state2, (prefix,), str(out2))
    assert out2.read_text() == rec(1)


def test_an_output_taken_over_by_another_state_file_is_forgotten_not_truncated():
    state, out = setup()
    with out.open("a") as f:
        f.write(rec(2))                              # not committed by `state`
    (out.parent / "o.jsonl.owner").write_text("someone-else\t/elsewhere.db\n")
    _reconcile_outputs(state, (PREFIX,), None)
    assert out.read_text() == rec(1) + rec(2)
    assert str(out) not in state.checkpoints()


def test_discard_drops_pending_and_uncommitted_records():
    """A pass that starts again (after a lost connection) must not write the records of
    the cut batch a second time: pending ones are dropped, written ones truncated."""
    from dsnparse.sources.imap import _Output
    state, out = setup()
    o = ImapOptions(host="h", user="u")
    w = _Output(str(out), "jsonl", state, o.source_prefix(), False)
    w.write([{"source": "imap://u@h/INBOX;UIDVALIDITY=1/;UID=2"}])
    with out.open("a") as f:
        f.write(rec(3))                             # written, never committed
    w.discard()
    w.flush()
    assert out.read_text() == rec(1)
    w.close()


def test_rematch_goes_on_until_the_folder_is_reconciled():
    """Issue 18 finding 2, at the state-file level: rows stored under UIDVALIDITY 1 are
    matched under 2 even after some rows exist under 2, each old row once, until a whole
    pass marks the folder reconciled."""
    from dsnparse.sources.imap.process import _Done
    state, _ = setup()
    o = ImapOptions(host="h", user="u")
    old = [_Done(uid, f"<m{uid}@x>", f"{uid:064x}", "bounce") for uid in (1, 2, 3)]
    state.commit_batch(o, 1, old, None)
    assert not state.needs_rematch(o, 1)
    assert state.needs_rematch(o, 2)
    hit = state.find_alias(o, 2, "<m1@x>", f"{1:064x}", set())
    assert hit is not None and hit[1] == "bounce"
    state.commit_batch(o, 2, [_Done(10, "<m1@x>", f"{1:064x}", "bounce", alias_of=hit[0])],
                       None)
    assert state.needs_rematch(o, 2)                 # rows under 2 now, still matching
    assert state.find_alias(o, 2, "<m1@x>", f"{1:064x}", set()) is None      # claimed
    assert state.find_alias(o, 2, "<m2@x>", f"{2:064x}", set()) is not None
    assert state.find_alias(o, 2, "<m2@x>", f"{9:064x}", set()) is None      # other bytes
    state.mark_reconciled(o, 2)
    assert not state.needs_rematch(o, 2)
    assert state.needs_rematch(o, 3)                 # a later change starts again
