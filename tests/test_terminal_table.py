"""Terminal tables that fit: the verdict table (``--format table``) and ``suppressions list``
follow the terminal's width (long cells cut in the middle with …), keep wide characters
aligned (UAX #11 East Asian Width: two columns; combining marks: none), and keep every value
whole on a pipe.  The terminal is a real pseudo-terminal with its window size set by ioctl."""
from __future__ import annotations

import fcntl
import io
import os
import pty
import shutil
import struct
import subprocess
import sys
import termios

import pytest

from dsnparse.output import (TableWriter, display_width, fit, fit_widths, pad,
                             terminal_width)

from conftest import SAMPLES

CJK = "日本語ユーザー@例え.jp"


def test_display_width_counts_terminal_columns():
    assert display_width("bob@example.com") == 15
    assert display_width("日本語") == 6                      # W: two columns each
    assert display_width("ｆｕｌｌ") == 8                    # F (fullwidth forms)
    assert display_width("e\u0301") == 1                    # a combining acute accent
    assert display_width("a\u200bb") == 2                   # zero-width space (Cf)
    assert display_width("📧") == 2
    assert display_width("Ελληνικά") == 8                   # narrow letters


def test_fit_cuts_in_the_middle_by_columns():
    assert fit("abcdefghij", 10) == "abcdefghij"
    assert fit("abcdefghij", 5) == "ab…ij"
    assert fit("abcdefghijk", 6) == "abc…jk"
    s = fit(CJK, 10)
    assert display_width(s) <= 10 and s.startswith("日本") and s.endswith(".jp")
    assert s == "日本…え.jp" and display_width(s) == 10    # 4 + 1 + 5 columns
    for w in range(1, 25):
        assert display_width(fit(CJK, w)) <= w
    assert pad("日本", 6) == "日本  "


def test_fit_widths_narrows_the_widest_columns_first():
    assert fit_widths([10, 40, 10], 100) == [10, 40, 10]
    assert fit_widths([10, 40, 10], 42) == [10, 20, 10]        # 2 spaces between 3 columns
    assert fit_widths([10, 40, 10], 14, [4, 4, 4]) == [4, 4, 4]
    assert fit_widths([10, 40, 10], 11, [4, 4, 4]) == [3, 3, 3]    # past the minimums
    # in a given order, each column down to its minimum before the next
    assert fit_widths([20, 36, 9, 22], 60, [20, 16, 5, 10], order=(3, 2, 1)) == [20, 22, 5, 10]


def test_table_fits_a_width_and_stays_aligned_with_wide_characters():
    buf = io.StringIO()
    w = TableWriter(buf, columns=("source", "final_recipient", "reason"),
                    widths=(30, 30, 12), width=50)   # no shrink order: the widest first
    rows = [{"source": "/var/mail/bounces/" + "x" * 40 + "/msg-0001.eml",
             "final_recipient": CJK, "reason": "user_unknown"},
            {"source": "short.eml", "final_recipient": "bob@example.com",
             "reason": "mailbox_full"},
            {"source": "ｆｕｌｌｗｉｄｔｈ.eml", "final_recipient": "é\u0301@x.fr",
             "reason": "filtered"}]
    w.write(rows)
    lines = buf.getvalue().splitlines()
    assert all(display_width(line) <= 50 for line in lines)
    widths = w.widths
    assert sum(widths) + 2 <= 50
    # every cell starts at the same terminal column on every line
    starts = [0, widths[0] + 1, widths[0] + widths[1] + 2]
    for line, r in zip(lines[1:], rows):
        for col, start in zip(("source", "final_recipient", "reason"), starts):
            cell = fit(r[col], widths[("source", "final_recipient", "reason").index(col)])
            i = line.index(cell)
            assert display_width(line[:i]) == start, (line, col)
    assert widths == (18, 18, 12)     # the two wide columns gave up the same
    assert lines[1].split()[0] == "/var/mail…0001.eml"    # start and end kept


def test_table_without_a_terminal_keeps_full_values():
    buf = io.StringIO()
    assert terminal_width(buf) is None
    long = "/var/mail/bounces/" + "x" * 80 + "/msg-0001.eml"
    w = TableWriter(buf, columns=("source", "reason"), widths=(20, 12))
    w.write([{"source": long, "reason": "user_unknown"}])
    assert long in buf.getvalue() and "…" not in buf.getvalue()


def _pty_run(args, cols: int, env=None) -> str:
    """Run ``python -m dsnparse ARGS`` with its stdout on a pseudo-terminal ``cols`` wide."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    env = {k: v for k, v in (env or os.environ).items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "dsnparse", *args], stdout=slave,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:          # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        err = proc.stderr.read().decode()
        proc.wait(timeout=120)
    assert proc.returncode == 0, err
    return b"".join(chunks).decode("utf-8").replace("\r\n", "\n")


@pytest.fixture()
def long_source(tmp_path):
    src = next(p for p in sorted((SAMPLES / "rfc3464").rglob("*.eml")))
    d = tmp_path / ("a-folder-with-a-long-name-" * 4).strip("-")
    d.mkdir()
    shutil.copy(src, d / "bounce-message-0001.eml")
    shutil.copy(src, d / "bounce-message-0002.eml")
    return d


def test_parse_table_on_a_terminal_fits_its_width(long_source):
    out = _pty_run(["parse", str(long_source), "-f", "table", "-q", "-j", "2"], 72)
    lines = [line for line in out.splitlines() if line]
    assert len(lines) >= 3 and lines[0].startswith("source")
    assert all(display_width(line) <= 72 for line in lines), out
    rows = [line for line in lines[1:] if "…" in line]
    assert rows and all("eml" in line.split()[0] for line in rows)   # the end is kept


def test_parse_table_on_a_pipe_keeps_full_values(long_source):
    r = subprocess.run([sys.executable, "-m", "dsnparse", "parse", str(long_source), "-f",
                        "table", "-q"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "60"})
    assert r.returncode == 0, r.stderr
    assert str(long_source / "bounce-message-0001.eml") in r.stdout and "…" not in r.stdout


@pytest.fixture()
def suppressions_db(tmp_path):
    from dsnparse.ledger import Ledger

    path = tmp_path / "l.sqlite3"
    with Ledger(path) as led:
        for i, addr in enumerate([CJK, "a.very.long.local.part.for.testing." * 2 + "@example.com",
                                  "bob@example.com"]):
            led.record_event(addr, "bounce", at=1714521600 + i, reason="user_unknown",
                             status="5.1.1", code="511", bounce_type="hard",
                             fault="recipient", message_id=f"m{i}@mail.example.com",
                             source=str(tmp_path / ("mailbox-" * 8) / f"msg{i}.eml"))
    return path


def test_suppressions_list_on_a_terminal_fits_and_aligns_wide_addresses(suppressions_db):
    out = _pty_run(["suppressions", "list", "--db", str(suppressions_db)], 80)
    lines = [line for line in out.splitlines() if line]
    assert all(display_width(line) <= 80 for line in lines), out
    head = lines[0]
    basis_col = display_width(head[:head.index("BASIS")])
    for line in lines[1:]:
        if not line.startswith(" "):          # an address line: BASIS under BASIS
            i = line.index("hard")
            assert display_width(line[:i]) == basis_col, line
    assert any(CJK in line for line in lines)
    assert any("…" in line for line in lines)  # the long address, cut in the middle
    assert any(line.startswith("      ") for line in lines)   # a wrapped bounce line


def test_suppressions_list_on_a_pipe_keeps_full_values(suppressions_db):
    r = subprocess.run([sys.executable, "-m", "dsnparse", "suppressions", "list", "--db",
                        str(suppressions_db)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "40"})
    assert r.returncode == 0, r.stderr
    assert "a.very.long.local.part.for.testing.a.very.long" in r.stdout and "…" not in r.stdout
    assert "mailbox-mailbox-mailbox-mailbox" in r.stdout


def test_a_wide_terminal_gives_its_spare_columns_to_the_long_values():
    # 143 columns are what the nine verdict columns need with their gaps; at 200 the
    # recipient, source and rule share the 57 spare, each up to three times its width
    assert fit_widths([10, 20], 100, grow=(1,)) == [10, 60]            # capped at 3 x 20
    assert fit_widths([10, 20, 10], 53, grow=(1, 2)) == [10, 26, 15]   # 11 spare, shared
    assert fit_widths([10, 20], 31, grow=(1,)) == [10, 20]             # no spare: as given
    buf = io.StringIO()
    recipient = "firstname.middlename.lastname@subdomain.example.org"   # 50 characters
    w = TableWriter(buf, header=False, width=200)
    assert sum(w.widths) + len(w.widths) - 1 == 200
    w.write([{"source": "a.eml", "kind": "bounce", "final_recipient": recipient}])
    assert recipient in buf.getvalue()
    narrow = io.StringIO()
    TableWriter(narrow, header=False, width=120).write(
        [{"source": "a.eml", "kind": "bounce", "final_recipient": recipient}])
    assert recipient not in narrow.getvalue() and "…" in narrow.getvalue()
