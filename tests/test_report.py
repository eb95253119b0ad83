"""dsnparse report: the SQL figures against the same events counted in Python, the page
(sections, escaping, languages, size) and the command.  The browser test is
test_report_browser.py."""
from __future__ import annotations

import random
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime, timezone

import pytest

pytest.importorskip("matplotlib", reason="the report needs matplotlib (dsnparse[report])")

from dsnparse.codes import load_table
from dsnparse.ledger import Ledger
from dsnparse.reasons import load_reasons
from dsnparse.report import build_report
from dsnparse.report.page import SECTIONS
from dsnparse.report.queries import SENDER_CATEGORIES, Period, collect

from conftest import SAMPLES

DAY = 86400
T0 = datetime(2024, 5, 1, tzinfo=timezone.utc).timestamp()   # day 19844
DOMAINS = ["gmail.com", "yahoo.co.jp", "orange.fr", "example.org", "outlook.com", "web.de"]
# (reason, status, code, bounce_type): statuses and codes as the seed table pairs them
KINDS = [("user_unknown", "5.1.1", "511", "hard"), ("mailbox_full", "4.2.2", "452", "soft"),
         ("host_unknown", "5.1.2", "512", "hard"), ("blocked", "5.7.1", "571", "hard"),
         ("auth_failure", "5.7.26", "570", "hard"), ("spam_detected", "5.7.1", "571", "hard"),
         ("expired", "4.4.7", "447", "soft"), ("suspend", "5.2.1", "521", "soft")]


def _events(seed: int = 16, n: int = 400) -> list[dict]:
    """Bounces spread over five days (deterministic), each with the fault of its reason."""
    rnd = random.Random(seed)
    faults = {k: v.fault for k, v in load_reasons().items()}
    out = []
    for i in range(n):
        reason, status, code, btype = rnd.choice(KINDS)
        dom = rnd.choice(DOMAINS)
        out.append(dict(address=f"user{rnd.randrange(150)}@{dom}", kind="bounce",
                        at=T0 + rnd.randrange(5 * DAY), reason=reason, status=status,
                        code=code, bounce_type=btype, fault=faults[reason],
                        campaign=rnd.choice(["spring-sale", "newsletter-42", None]),
                        diagnostic_code=f"550 {reason} number {i}", message_id=f"m{i}@x"))
    for i in range(7):
        out.append(dict(address=f"late{i}@orange.fr", kind="delay", at=T0 + i * 3600,
                        status="4.4.1", message_id=f"d{i}@x"))
    out.append(dict(address="abuse@web.de", kind="complaint", at=T0 + 2 * DAY + 5,
                    message_id="c@x"))
    out.append(dict(address="mystery@example.org", kind="bounce", at=T0 + 3 * DAY + 7,
                    code="911", bounce_type="hard", fault="unknown", reason="undefined",
                    message_id="u@x"))
    return out


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "ledger.sqlite3"
    evs = _events()
    with Ledger(path) as led:
        for e in evs:
            e = dict(e)
            led.record_event(e.pop("address"), e.pop("kind"), at=e.pop("at"), **e)
    led = Ledger(path, create=False)
    yield led, evs
    led.close()


def _dom(a: str) -> str:
    return a.rpartition("@")[2]


def test_totals_daily_domains_reasons_codes_campaigns_match_python_counts(ledger):
    led, evs = ledger
    f = collect(led.conn, Period())
    bounces = [e for e in evs if e["kind"] == "bounce"]
    assert f.totals["bounce"] == len(bounces) == 401
    assert f.totals["delay"] == 7 and f.totals["complaint"] == 1
    assert f.totals["hard"] == sum(e["bounce_type"] == "hard" for e in bounces)
    assert f.totals["soft"] == sum(e["bounce_type"] == "soft" for e in bounces)
    assert f.totals["addresses"] == len({e["address"] for e in bounces})
    # per UTC day, kind, seed type and fault
    want = Counter((int(e["at"] // DAY), e["kind"], e.get("bounce_type"), e.get("fault"))
                   for e in evs)
    assert {r[:4]: r[4] for r in f.daily} == dict(want)
    assert {r[0] for r in f.daily} == set(range(19844, 19849))
    # domains, most bounced first, split by fault
    per = Counter(_dom(e["address"]) for e in bounces)
    assert [(d, n) for d, n, _ in f.domains] == sorted(per.items(),
                                                        key=lambda x: (-x[1], x[0]))
    for d, n, split in f.domains:
        assert split == dict(Counter(e["fault"] for e in bounces if _dom(e["address"]) == d))
        assert sum(split.values()) == n
    reasons = Counter(e["reason"] for e in bounces)
    assert {r: n for r, n in f.reasons} == dict(reasons)
    assert f.statuses == sorted(Counter(e["status"] for e in bounces if e.get("status"))
                                .items(),
                                key=lambda x: (-x[1], x[0]))
    assert {(c, t): n for c, t, n in f.codes} == dict(
        Counter((e["code"], e["bounce_type"]) for e in bounces))
    camps = Counter(e["campaign"] for e in bounces if e.get("campaign"))
    assert {c: n for c, n, *_ in f.campaigns} == dict(camps)
    for c, n, hard, soft in f.campaigns:
        mine = [e for e in bounces if e.get("campaign") == c]
        assert (hard, soft) == (sum(e["bounce_type"] == "hard" for e in mine),
                                sum(e["bounce_type"] == "soft" for e in mine))


def test_sender_side_rows_since_when_and_newest_example(ledger):
    led, evs = ledger
    f = collect(led.conn, Period(), top=100)
    cat_of = {r: c for c, rs in SENDER_CATEGORIES.items() for r in rs}
    side = [e for e in evs if e["kind"] == "bounce" and e.get("fault") in ("sender", "message")]
    assert side, "the data set has sender-side bounces"
    groups = defaultdict(list)
    for e in side:
        groups[(_dom(e["address"]), cat_of[e["reason"]])].append(e)
    assert {(d, c) for d, c, *_ in f.sender} == set(groups)
    for dom, cat, n, a, first, last, status, example, mta in f.sender:
        g = groups[(dom, cat)]
        newest = max(g, key=lambda e: e["at"])
        assert (n, a) == (len(g), len({e["address"] for e in g}))
        assert (first, last) == (min(e["at"] for e in g), newest["at"])
        assert example == newest["diagnostic_code"] and status == newest["status"]
    # the per-category totals count every sender-side bounce
    assert {c: n for c, n, *_ in f.sender_kinds} == dict(Counter(cat_of[e["reason"]]
                                                                  for e in side))
    assert {c for c, *_ in f.sender_kinds} <= {"reputation", "authentication", "content"}
    assert {c: t for c, _, t in f.sender_kinds} == {
        c: min(e["at"] for e in side if cat_of[e["reason"]] == c) for c, *_ in f.sender_kinds}


def test_suppressions_per_day_by_basis_agree_with_the_ledgers_decisions(ledger):
    led, _ = ledger
    f = collect(led.conn, Period())
    decided = list(led.suppressions())
    assert f.suppressed_total == len(decided) > 0
    want = Counter((int(d.since // DAY),
                    "review" if any(t.startswith("review_") for t in d.tags) else d.basis)
                   for d in decided)
    assert {(day, b): n for day, b, n in f.suppressed_daily} == dict(want)
    review = [d.address for d in decided if any(t.startswith("review_") for t in d.tags)]
    assert "mystery@example.org" in review          # the 911 bounce waits for a person
    assert f.review_total == len(review) and sorted(r[0] for r in f.review) == sorted(review)
    assert any(b == "complaint" for _, b, _ in f.suppressed_daily)


def test_period_is_half_open_and_counts_only_its_events(ledger):
    led, evs = ledger
    since, until = T0 + DAY, T0 + 3 * DAY
    f = collect(led.conn, Period(since, until))
    inside = [e for e in evs if since <= e["at"] < until]
    assert sum(r[4] for r in f.daily) == len([e for e in inside
                                              if e["kind"] in ("bounce", "delay", "complaint")])
    assert {r[0] for r in f.daily} == {19845, 19846}
    assert f.totals["bounce"] == sum(e["kind"] == "bounce" for e in inside)
    made = [d for d in led.suppressions() if since <= d.since < until]
    assert sum(n for *_, n in f.suppressed_daily) == len(made) > 0
    assert f.suppressed_total == len(list(led.suppressions()))   # the total is not the period's


def test_events_recorded_without_a_fault_get_it_from_reason_and_status(tmp_path):
    with Ledger(tmp_path / "old.sqlite3") as led:
        led.record_event("a@old.example", "bounce", at=T0, reason="user_unknown",
                         status="5.1.1", code="511", bounce_type="hard")
        led.record_event("b@old.example", "bounce", at=T0, status="5.2.2", code="522",
                         bounce_type="soft")
        f = collect(led.conn, Period())
    # user_unknown -> recipient (rules/reasons.yaml); 5.2.2 -> X.2 mailbox (rules/faults.yaml)
    assert {r[3]: r[4] for r in f.daily} == {"recipient": 1, "mailbox": 1}
    assert f.domains[0][2] == {"recipient": 1, "mailbox": 1}


def test_page_has_every_section_sender_first_and_no_external_reference(ledger):
    led, _ = ledger
    html = build_report(led, generated=T0)
    ids = re.findall(r'<section id="(\w+)"', html)
    assert sorted(ids) == sorted(SECTIONS)
    assert ids[:2] == ["summary", "sender"]      # sender-side problems at the top
    assert "<script" not in html and "<link" not in html and "@import" not in html
    refs = re.findall(r'(?:src|href)\s*=\s*["\']?([^"\'\s>]*)', html)
    assert refs and all(r.startswith("#") for r in refs), refs   # only the SVGs' own ids
    assert not re.search(r"url\((?!#)", html)
    assert "default-src 'none'" in html
    # no other host named at all (matplotlib's metadata and namespace URIs are dropped)
    assert "http://" not in html and "https://" not in html
    # sender, two over time, domains, reasons, suppressions, campaigns
    assert html.count("<svg") == 7
    # the numbers beside the charts: the domain table lists the top domain's count
    top_dom, n = collect(led.conn, Period()).domains[0][:2]
    assert re.search(rf"<td class=\"w\">{re.escape(top_dom)}</td><td class=\"n\">{n:,}</td>", html)


def test_without_sender_side_problems_the_section_is_last():
    with Ledger(":memory:") as led:
        led.record_event("a@example.org", "bounce", at=T0, reason="user_unknown",
                         status="5.1.1", code="511", bounce_type="hard", fault="recipient")
        html = build_report(led, generated=T0)
    ids = re.findall(r'<section id="(\w+)"', html)
    assert ids[-1] == "sender" and "No sender-side rejection" in html


def test_seed_table_descriptions_in_english_and_french(ledger):
    led, _ = ledger
    row = load_table().row("511")
    en = build_report(led, lang="en", generated=T0)
    fr = build_report(led, lang="fr", generated=T0)
    assert f"<td>{row.description}</td>" in en                     # "Bad address"
    fr_text = row.description_fr.replace("'", "&#x27;")
    assert f"<td>{fr_text}</td>" in fr and '<html lang="fr">' in fr
    assert "Rapport des rebonds" in fr and "Bounce report" in en
    with pytest.raises(ValueError, match="unknown report language"):
        build_report(led, lang="de")


def test_hostile_ledger_values_are_text_not_markup():
    evil = '<img src="http://evil.example/x.png" onerror="alert(1)">'
    with Ledger(":memory:") as led:
        led.record_event("x@blocked.example", "bounce", at=T0, reason="blocked",
                         status="5.7.1", code="571", bounce_type="hard", fault="sender",
                         diagnostic_code="550 " + evil, campaign=evil)
        html = build_report(led, generated=T0)
    assert evil not in html and "&lt;img src=&quot;http://evil.example" in html


def test_dollar_signs_in_labels_are_text_not_math():
    # matplotlib reads "$…$" as math: an address or domain from mail must come out as written
    with Ledger(":memory:") as led:
        for addr in ("x@$x_{$.example", "y@$a$.example"):
            led.record_event(addr, "bounce", at=T0, reason="user_unknown", status="5.1.1",
                             code="511", bounce_type="hard", fault="recipient")
        html = build_report(led, generated=T0)
    assert "$x_{$.example" in html and "$a$.example" in html


def test_a_long_period_stays_small(tmp_path):
    """Almost two years of daily bounces: buckets become weeks, the page stays small."""
    rnd = random.Random(3)
    with Ledger(tmp_path / "long.sqlite3") as led:
        led.record_records([{"final_recipient": f"u{i}@d{i % 40}.example", "kind": "bounce",
                             "action": "failed", "status": "5.1.1", "code": "511",
                             "bounce_type": "hard", "reason": "user_unknown",
                             "fault": "recipient", "message_id": f"<{i}@x>",
                             "date": T0 + rnd.randrange(700 * DAY)} for i in range(3000)])
        html = build_report(led, generated=T0)
    assert "Week of" in html
    assert len(html.encode()) < 400_000


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "dsnparse", "report", *args],
                          capture_output=True, text=True, timeout=300, **kw)


def test_cli_from_ledger_from_mail_and_errors(ledger, tmp_path):
    led, _ = ledger
    out = tmp_path / "r.html"
    r = _cli("--db", str(led.path), "-o", str(out), "--since", "2024-05-02",
             "--until", "2024-05-04", "--lang", "fr")
    assert r.returncode == 0, r.stderr
    html = out.read_text(encoding="utf-8")
    assert "Rapport des rebonds" in html and "2024-05-02 00:00 – 2024-05-04 00:00 UTC" in html
    # straight from mail: the samples, parsed into a temporary ledger
    r = _cli(str(SAMPLES / "rfc3464"), "-o", str(tmp_path / "s.html"), "-j", "1")
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "s.html").read_text(encoding="utf-8")
    assert re.search(r"<b>[1-9][\d,]*</b><span>bounces</span>", page)
    m = re.search(r"(\d+) messages read, (\d+) not bounces, (\d+) not readable", r.stderr)
    assert m and int(m.group(1)) >= 1 and m.group(0) in page     # said, and in the header
    # errors: exit 2 with a message, and nothing created
    r = _cli("--db", str(tmp_path / "none.sqlite3"), "-o", str(tmp_path / "x.html"))
    assert r.returncode == 2 and "no ledger at" in r.stderr
    assert not (tmp_path / "none.sqlite3").exists() and not (tmp_path / "x.html").exists()
    r = _cli(str(SAMPLES), "--db", str(led.path), "-o", str(tmp_path / "x.html"))
    assert r.returncode == 2 and "not both" in r.stderr
    r = _cli("--db", str(led.path), "--since", "2024-05-04", "--until", "2024-05-02",
             "-o", str(tmp_path / "x.html"))
    assert r.returncode == 2 and "--until must be later" in r.stderr
    r = _cli("--db", str(led.path), "--since", "yesterday-ish", "-o", str(tmp_path / "x.html"))
    assert r.returncode == 2 and "not a time" in r.stderr
    # an output that cannot be written: said before any input is read
    r = _cli(str(SAMPLES), "-o", str(tmp_path / "no-such-dir" / "r.html"))
    assert r.returncode == 2 and "no directory" in r.stderr and "messages read" not in r.stderr
    r = _cli(str(SAMPLES), "-o", str(tmp_path))
    assert r.returncode == 2 and "a directory" in r.stderr
    # a missing input: the report is still written, exit 1
    r = _cli(str(tmp_path / "missing.mbox"), "-o", str(tmp_path / "m.html"))
    assert r.returncode == 1 and (tmp_path / "m.html").exists()


def test_an_empty_ledger_and_a_delay_only_one_give_a_page_without_warnings(recwarn):
    with Ledger(":memory:") as led:
        html = build_report(led, generated=T0)
        assert sorted(re.findall(r'<section id="(\w+)"', html)) == sorted(SECTIONS)
        assert html.count("<svg") == 0 and html.count("Nothing recorded in this period.") == 3
        led.record_event("late@example.org", "delay", at=T0, status="4.4.1")
        html = build_report(led, generated=T0)
    assert html.count("<svg") == 2           # the two charts over time
    # the day's row: bounces 0, hard 0, soft 0, delays 1
    assert re.search(r"<td class=\"d\">2024-05-01</td><td class=\"n\">0</td>"
                     r"(<td class=\"n\">0</td>){2}<td class=\"n\">1</td>", html)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_the_scans_side_by_side_give_the_same_figures(ledger):
    import sqlite3

    led, _ = ledger
    uri = f"{led.path.resolve().as_uri()}?mode=ro"
    opened = []

    def connect():
        opened.append(1)
        return sqlite3.connect(uri, uri=True, check_same_thread=False)
    for period in (Period(), Period(T0 + DAY, T0 + 3 * DAY)):
        assert collect(led.conn, period, connect=connect, workers=3) == collect(led.conn, period)
    assert len(opened) == 12                  # six parts, each on its own connection
