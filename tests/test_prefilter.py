"""The cheap pack prefilter (required literals, ``keywords``) and the pack cache."""
from __future__ import annotations

import os
import pickle

import pytest

import dsnparse
from conftest import ROOT, SAMPLES, SISIMAI
from dsnparse import RuleError, rulepacks, rules
from dsnparse.options import Options
from dsnparse.rules import load_pack, load_packs, required_literals


@pytest.mark.parametrize("pattern, want", [
    ("^This is the mail system at host ", {"this is the mail system at host "}),
    ("mailbox (?:is )?full|over quota", {"mailbox ", "over quota"}),
    ("(?:user|mailbox) (?:unknown|not found)", {"unknown", "not found"}),
    ("(?:abc)+x", {"abc"}),
    ("(?i)MAILER-DAEMON", {"mailer-daemon"}),
    ("^<(?P<recipient>[^>]+)>:", None),           # nothing long enough
    ("[[:alpha:]]+xyz_long", None),                # POSIX class: regex-only syntax
    (r"\p{L}+ unknown user", None),               # \p{..}: regex-only syntax
    ("abc(?:defgh){e<=1}", None),                  # fuzzy matching
    ("(?:abc)?xy", None),                          # optional: not required
    ("ящик (?:получателя )?Переполнен", {"переполнен"}),  # Cyrillic: folds one to one
    ("Άγνωστος χρήστης", {"άγνωστοσ χρήστησ"}),  # Greek: folds one to one, final sigma to sigma
    ("αΐδιος φάκελος", {"διοσ φάκελοσ"}),            # "ΐ" folds to three characters: not a needle
    ("ディレクトリのリストにありません", {"ディレクトリのリストにありません"}),  # no case at all
    ("Straße nicht", {"e nicht"}),                   # "ß" folds to "ss": not a needle
])
def test_required_literals(pattern, want):
    got = required_literals(pattern)
    assert (None if got is None else set(got)) == want


@pytest.mark.parametrize("pattern, text", [
    ("ящик переполнен", "ЯЩИК ПЕРЕПОЛНЕН"),
    ("ящик переполнен", "Ящик пеРеполнен"),
    ("в ящике", "ᲀ ящике"),                   # U+1C80 folds to "в" as the pattern does
    ("Straße nicht", "STRASSE NICHT STRAẞE nicht"),
    ("άγνωστος χρήστης", "ΆΓΝΩΣΤΟΣ ΧΡΉΣΤΗΣ"),
    ("γραμματοκιβώτιο πλήρες", "Γραμματοκιβώτιο ΠΛΉΡΕΣ"),
    ("ο χρήστης δεν υπάρχει", "Ο ΧΡΉΣΤΗς ΔΕΝ ΥΠΆΡΧΕΙ"),
])
def test_non_ascii_needles_are_found_in_what_the_pattern_matches(pattern, text):
    import regex
    needles = required_literals(pattern)
    if regex.search(pattern, text, regex.I | regex.V0):
        assert any(n in text.casefold() for n in needles)


def _texts():
    out = [p.read_bytes() for p in sorted(SAMPLES.rglob("*.eml"))]
    if (SISIMAI / "maildir").is_dir():
        out += [p.read_bytes() for p in sorted((SISIMAI / "maildir").rglob("*")) if p.is_file()]
    return out


def test_prefilter_never_rejects_a_text_its_pattern_matches():
    """Every shipped pattern with needles, on every sample (and corpus email when present):
    if the pattern matches the report text, one needle is in the case-folded text."""
    from dsnparse.engine import Context
    from dsnparse.load import load
    from dsnparse import rfc3464

    pats = []
    for pack in load_packs(()):
        for c in pack.detect_any + pack.detect_all + pack.detect_none:
            pats.append(c.pattern)
        pats += [t.pattern for t in pack.text_rules]
        pats += [r.pattern for r in pack.recipients] + list(pack.report_start) + list(pack.original_start)
    pats = [p for p in pats if p.needles]
    for data in _texts():
        try:
            msg = load(data)
        except dsnparse.InputError:
            continue
        ctx = Context(msg, rfc3464.scan(msg), Options(), None)
        text = ctx.text()
        for p in pats:
            if p.search(text, 1.0):
                assert p.may_match(text.casefold()), (p.where, p.needles)


def test_literal_sets_never_reject_a_text_a_rule_matches():
    """Text rules are skipped when one of their required literal sets (``needles``, then
    ``more``; per branch for split patterns) is absent: on every sample and corpus report
    text, and on each of its lines (diagnostics are short), a rule or branch that matches
    is never skipped."""
    from dsnparse.engine import Context
    from dsnparse.load import load
    from dsnparse import rfc3464

    rules_ = [t for pack in load_packs(()) for t in pack.text_rules]
    assert any(t.pattern.more for t in rules_) and any(t.pattern.branch_more for t in rules_)
    compiled = {src: rules._compile_source(src) for r in rules_ for src, _ in r.pattern.branches or ()}
    checked = 0
    for data in _texts():
        try:
            msg = load(data)
        except dsnparse.InputError:
            continue
        text = Context(msg, rfc3464.scan(msg), Options(), None).text()
        for t in [text] + [line for line in text.split("\n") if len(line) > 20][:15]:
            folded = t.casefold()
            for r in rules_:
                pt = r.pattern
                if pt.branches:
                    for j, (src, needles) in enumerate(pt.branches):
                        if compiled[src].search(t):
                            checked += 1
                            assert needles is None or any(n in folded for n in needles)
                            assert pt.branches_that_may_match([j], folded) == [j], (pt.where, j)
                elif pt.search(t, 1.0):
                    checked += 1
                    assert rules._may_run(r, None, folded) is None, (pt.where, pt.more)
    assert checked > 100


def test_shortcuts_give_the_verdicts_of_the_full_search():
    """With a trace (``dsnparse explain``) every pack is tried and a report's vendor is
    always looked for; without, the dispatch prefilter skips packs and the vendor is looked
    for only when it can matter.  Both give the same records on every sample and corpus
    email."""
    from dsnparse import engine
    compared = 0
    for data in _texts():
        try:
            fast = engine.parse(data)
        except dsnparse.InputError:
            continue
        full = engine.parse(data, trace=[])
        assert fast.records("m") == full.records("m"), data[:200]
        compared += 1
    assert compared > 50


def test_shortcuts_give_the_verdicts_of_the_full_search_on_mutants():
    """The same comparison on mutated emails (tests/fuzzing.py): odd structures, broken
    fields and charsets must not make the prefilter or the lazy vendor skip a verdict."""
    import random
    import fuzzing
    from dsnparse import engine
    pool = fuzzing.seeds(limit_corpus=200)
    rng = random.Random(17)
    compared = 0
    for _ in range(1500):
        data = fuzzing.mutate(rng, pool)
        try:
            fast = engine.parse(data)
        except dsnparse.InputError:
            continue
        assert fast.records("m") == engine.parse(data, trace=[]).records("m"), data[:200]
        compared += 1
    assert compared > 1000


def _pack(tmp_path, body, name="vendor.yaml"):
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / name).write_text(body)
    return d


VENDOR = """
description: test vendor
order: 100
keywords: [acme mail relay]
detect:
  any:
    - body: 'could not be delivered'
recipients:
  - id: r
    pattern: '^\\s*(?P<recipient>\\S+@\\S+)\\s*$'
"""
MSG = (b"From: postmaster@acme.example\nTo: s@example.com\nSubject: failure\n\n"
       b"Your message could not be delivered to:\n\n   lost@example.org\n\n-- Acme Mail Relay\n")


def test_keywords_gate_detection(tmp_path, monkeypatch):
    monkeypatch.setenv("DSNPARSE_CACHE", "0")
    d = _pack(tmp_path, VENDOR)
    opts = Options(rules=(str(d),))
    r = dsnparse.parse(MSG, opts)
    assert r.kind == "bounce" and r.format == "vendor"
    r = dsnparse.parse(MSG.replace(b"Acme Mail Relay", b"Other"), opts)
    assert r.format != "vendor"


FOLDED = """
description: a vendor known by a header phrase and a header of its own
order: 100
detect:
  all:
    - header: subject
      pattern: 'delivery report from acme'
    - header: x-acme-id
      pattern: '\\S'
recipients:
  - id: r
    pattern: '^\\s*(?P<recipient>\\S+@\\S+)\\s*$'
"""


def test_dispatch_survives_folded_fields_and_requires_named_fields(tmp_path, monkeypatch):
    """A header condition's literals are looked for in the header section as written, where
    a field may be folded at any white space (RFC 5322 §2.2.3), and a condition on a field
    requires the field: both give trigger groups of the pack."""
    from dsnparse import rules
    monkeypatch.setenv("DSNPARSE_CACHE", "0")
    d = _pack(tmp_path, FOLDED)
    opts = Options(rules=(str(d),))
    pack = [p for p in rules.load_packs(opts.rules) if p.id == "vendor"][0]
    # a header may be folded at any space: "delivery" is the literal sure to be there
    assert set(pack.triggers) == {frozenset({"delivery"}),
                                  frozenset({"subject:"}), frozenset({"x-acme-id:"})}
    msg = (b"From: postmaster@acme.example\nTo: s@example.com\n"
           b"Subject: Delivery report\r\n\tfrom Acme\nX-Acme-Id: 7\n\n"
           b"   lost@example.org\n")
    r = dsnparse.parse(msg, opts)
    assert r.format == "vendor" and r.verdicts[0].final_recipient == "lost@example.org"
    r = dsnparse.parse(msg.replace(b"X-Acme-Id: 7\n", b""), opts)
    assert r.format != "vendor"


def test_keywords_are_validated(tmp_path):
    d = _pack(tmp_path, VENDOR.replace("[acme mail relay]", "[acme, '']"))
    with pytest.raises(RuleError) as e:
        load_pack(d / "vendor.yaml")
    assert "keywords[1]" in str(e.value)
    d = _pack(tmp_path, VENDOR.replace("[acme mail relay]", "acme"))
    with pytest.raises(RuleError):
        load_pack(d / "vendor.yaml")


@pytest.fixture
def pack_cache(tmp_path, monkeypatch):
    """A pack cache of the test's own (``tmp_path/cache``); the loaded-packs memo is cleared
    before and after the test."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("DSNPARSE_CACHE", "1")
    monkeypatch.setenv("DSNPARSE_CACHE_DIR", str(cache))
    load_packs.cache_clear()
    yield cache
    load_packs.cache_clear()


def test_pack_cache_is_used_and_invalidated(tmp_path, monkeypatch, pack_cache):
    d = _pack(tmp_path, VENDOR)
    first = load_packs((str(d),))
    files = list((tmp_path / "cache").glob("packs-*.pickle"))
    assert len(files) == 1
    load_packs.cache_clear()
    calls = []
    real = rules.load_pack
    monkeypatch.setattr(rulepacks.loader, "load_pack", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = load_packs((str(d),))
    assert not calls and [p.id for p in again] == [p.id for p in first]
    assert dsnparse.parse(MSG, Options(rules=(str(d),))).format == "vendor"
    # editing a pack invalidates the cache
    load_packs.cache_clear()
    (d / "vendor.yaml").write_text(VENDOR.replace("order: 100", "order: 101") + "\n")
    changed = load_packs((str(d),))
    assert calls and next(p for p in changed if p.id == "vendor").order == 101


def test_patterns_pickle_with_their_compiled_programs(monkeypatch):
    # the pack cache keeps each pattern (and branch) as the regex package pickles it: its
    # compiled program, loaded on first use without running the pattern parser again
    pack = load_pack(ROOT / "rules" / "generic" / "unknown-mta.yaml", "generic/unknown-mta")
    back = pickle.loads(pickle.dumps(pack))
    split = next(r.pattern for r in pack.text_rules if r.pattern.branches)
    from conftest import SAMPLES
    texts = [p.read_bytes().decode("utf-8", "replace") for p in sorted(SAMPLES.rglob("*.eml"))]
    texts += ["it was in the queue too long", "the message expired after 5 days in queue",
              "delivery was aborted after 5.0 hour(s)", "retry timeout exceeded"]
    expected = [(j, m and m.span()) for t in texts for j in range(len(split.branches))
                for m in [split.search_branches(t, 1.0, [j])]]
    text = "This is the mail system at host x.\nSorry: <a@b.example>: user unknown\n"
    whole = pack.detect_all[0].pattern.compiled.search(text)
    for mod in (rulepacks.pattern, rulepacks.loader):
        monkeypatch.setattr(mod, "_compile_source", lambda s: pytest.fail(f"compiled {s[:40]}"))
    c = back.detect_all[0].pattern
    assert not c._cell and c._code is not None
    assert c.search(text, 1.0).span() == whole.span()
    split_back = next(r.pattern for r in back.text_rules if r.pattern.branches)
    assert len(split_back._bcode) == len(split.branches)
    got = [(j, m and m.span()) for t in texts for j in range(len(split.branches))
           for m in [split_back.search_branches(t, 1.0, [j])]]
    assert got == expected and sum(1 for _, m in got if m) >= 4


def test_a_damaged_compiled_program_is_compiled_again():
    from dsnparse.rules import Pattern
    good = Pattern("user unknown", "test").compiled
    for code in (b"not a pickle", pickle.dumps(Pattern("other", "test").compiled), None):
        p = Pattern("user unknown", "test", _code=code)
        assert p.compiled.pattern == "user unknown" and p.compiled.flags == good.flags
        assert p.search("550 User Unknown", 1.0).group(0) == "User Unknown"


def test_dispatch_finds_every_pack_whose_trigger_occurs():
    from dsnparse import engine, rfc3464, rules
    packs = rules.load_packs(())
    disp = rules.Dispatch(packs)
    msg = engine.load(b"From: MAILER-DAEMON@mx.example\nTo: a@example.org\nSubject: x\n\n"
                      b"This is the mail system at host mx.example.\n")
    ctx = engine.Context(msg, rfc3464.scan(msg), engine.DEFAULT, None)
    idx = disp.candidates(ctx.folded)
    ids = [packs[i].id for i in idx]
    assert "mta/postfix" in ids                     # its trigger literal occurs
    assert "provider/amazonses" not in ids          # Amazon SES words do not
    assert idx == sorted(idx)                       # pack order is kept
    # every pack that really recognises the message is a candidate (no false negative)
    for i, p in enumerate(packs):
        if p.detects and rules.detect(p, ctx.header, ctx.text, 0.25):
            assert i in idx, p.id


def test_text_index_keeps_rule_order_and_skips_absent_literals():
    from dsnparse import rules
    packs = [p for p in rules.load_packs(()) if p.id == "standard/text"]
    hit = rules.find_text_rule("550 5.2.2 mailbox full", packs, 0.25)
    assert hit is not None and hit[1].reason == "mailbox_full"
    idx = rules._TextIndex(packs)
    # only the rules (or branches of a split rule) without required literals can match
    assert idx.candidates("nothing to see here") == list(rules._grouped(sorted(idx.always)))
    assert all(r.pattern.needles is None or r.pattern.branches for _, r in
               (idx.rules[i] for i, _ in idx.candidates("nothing to see here")))
    # "mailbox full" brings in the mailbox-full rule, with the one branch naming it
    rule_ids = {i: r.id for i, (_, r) in enumerate(idx.rules)}
    cands = dict(idx.candidates("550 5.2.2 mailbox full"))
    full = next(i for i, rid in rule_ids.items() if rid == "mailbox-full")
    branches = idx.rules[full][1].pattern.branches
    run = [branches[j][0] for j in cands[full]]
    assert run[0] == "mail ?box (?:is |was )?full"
    assert r"\bover ?quota\b" not in run and "postfach (?:ist )?voll" not in run
    assert len(run) < len(branches) // 3


def test_split_branches_reads_only_top_level_alternation():
    from dsnparse.rules import split_branches
    parts = split_branches(r"foo (?:a|b)|bar[|)]|ba\|z|quux|over ?quota")
    assert [p for p, _ in parts] == [r"foo (?:a|b)", r"bar[|)]", r"ba\|z", "quux", "over ?quota"]
    assert parts[0][1] == frozenset({"foo "}) and parts[4][1] == frozenset({"quota"})
    assert split_branches("aaa|bbb|ccc") is None                 # too few to pay
    assert split_branches(r"(?P<x>aaa)|bbb|ccc|ddd") is None     # named group
    assert split_branches(r"(a)\1|bbbb|cccc|dddd") is None       # back-reference
    assert split_branches(r"(?i)aaaa|bbbb|cccc|dddd") is None     # global inline flag
    assert split_branches(r"a|b|c|d") is None                    # no branch has a literal


def test_split_search_finds_what_the_whole_pattern_finds():
    """On every sample's text, each split text rule run branch by branch (only the branches
    whose literals occur) matches exactly where the whole alternation matches."""
    from conftest import SAMPLES
    from dsnparse import rules
    packs = rules.load_packs(())
    texts = [p.read_bytes().decode("utf-8", "replace") for p in sorted(SAMPLES.rglob("*.eml"))]
    texts += ["Mailbox is FULL; over quota", "550 user unknown; mailbox full", "quota exceeded"]
    checked = 0
    for pack in packs:
        for rule in pack.text_rules:
            pat = rule.pattern
            if not pat.branches:
                continue
            for text in texts:
                folded = text.casefold()
                which = [j for j, (_, needles) in enumerate(pat.branches)
                         if needles is None or any(n in folded for n in needles)]
                whole = pat.search(text, 1.0)
                split = pat.search_branches(text, 1.0, which)
                assert (whole and whole.span()) == (split and split.span()), (rule.id, text[:80])
                checked += whole is not None
    assert checked > 50


def test_text_rule_index_does_not_grow_with_the_number_of_remote_mtas():
    """Thousands of distinct remote MTAs share the few text-rule indexes (bounded memory)."""
    import dsnparse
    from dsnparse import rules
    from conftest import SAMPLES
    base = (SAMPLES / "rfc3464" / "01.eml").read_bytes()
    rules._TEXT_INDEX.clear()
    for i in range(300):
        dsnparse.parse(base.replace(b"mx.receiver.example", b"mx%d.host%d.example" % (i, i)))
    assert len(rules._TEXT_INDEX) <= 3


@pytest.mark.parametrize("dfa", [True, False])
def test_literals_finds_every_literal_that_occurs(dfa):
    # overlapping literals, one inside another, non-ASCII ones, and a text holding lone
    # surrogates (undecodable octets kept by the bytes parser) and 4-byte characters
    lits = ["from", "from:", "om:", "rom", "ящик", "送達", "x\udce9y", "zz", "mailer-daemon@"]
    text = "From: MAILER-DAEMON@x".casefold() + " ящик переполнен 送達 x\udce9y \U0001f600 \udcff"
    want = {i for i, x in enumerate(lits) if x in text}
    assert want == {0, 1, 2, 3, 4, 5, 6, 8}
    found = rules.Literals(lits, dfa=dfa)
    assert found.found(text) == want
    assert found.found("") == set()
    plain = rules.Literals(lits, dfa=dfa)
    plain._ac = None  # the fallback without the automaton
    assert plain.found(text) == want


def test_split_branches_are_compiled_only_when_searched():
    # a rule of dozens of phrases is searched through the few branches whose literals occur:
    # the others are never compiled (compiling costs ~0.2 ms a pattern, on every start-up)
    from dsnparse.rules import Pattern, split_branches
    source = "|".join(f"phrase number {w}" for w in ("one", "two", "three", "four", "five"))
    pat = Pattern(source, "test", branches=split_branches(source))
    m = pat.search_branches("x phrase number four y", 1.0, [3])
    assert m.group(0) == "phrase number four"
    assert [c is not None for c in pat._bcell] == [False, False, False, True, False]
    assert pat.search_branches("phrase number two", 1.0, [1, 3]).span() == (0, 17)
    assert [c is not None for c in pat._bcell] == [False, True, False, True, False]


def test_pack_caches_beyond_the_kept_number_are_removed(tmp_path, monkeypatch, pack_cache):
    monkeypatch.setattr(rulepacks.cache, "CACHE_FILES_KEPT", 3)
    cache = pack_cache
    written = []
    for i in range(5):
        (tmp_path / f"set{i}").mkdir()
        d = _pack(tmp_path / f"set{i}", VENDOR)
        load_packs((str(d),))
        new = set(cache.glob("packs-*.pickle")) - set(written)
        written.extend(sorted(new))
        os.utime(written[-1], ns=(i * 10**9, i * 10**9))  # written in this order
    left = sorted(cache.glob("packs-*.pickle"))
    assert len(written) == 5 and len(left) == 3
    assert set(left) == set(written[-3:])  # the last three written are kept


def test_a_damaged_pack_cache_is_rebuilt(tmp_path, monkeypatch, pack_cache):
    # the cache is checked whole (a digest) before it is unpickled: a flipped bit in a compiled
    # program would otherwise reach the regex package, which trusts the programs it loads
    d = _pack(tmp_path, VENDOR)
    load_packs((str(d),))
    (f,) = (tmp_path / "cache").glob("packs-*.pickle")
    good = f.read_bytes()
    real = rules.load_pack
    for at in (len(good) // 3, len(good) // 2, len(good) - 40):
        damaged = bytearray(good)
        damaged[at] ^= 0x10
        f.write_bytes(bytes(damaged))
        load_packs.cache_clear()
        calls = []
        monkeypatch.setattr(rulepacks.loader, "load_pack", lambda *a, **k: calls.append(a) or real(*a, **k))
        packs = load_packs((str(d),))
        assert calls, at  # read as damaged: the packs were loaded again, and written
        assert dsnparse.parse(MSG, Options(rules=(str(d),))).format == "vendor"
        assert f.read_bytes() != bytes(damaged)
        assert [p.id for p in packs][:1] == ["vendor"]


def test_odd_compiled_programs_are_compiled_again():
    import re as stdlib_re

    from dsnparse.rules import Pattern, split_branches
    source = "|".join(f"phrase number {w}" for w in ("one", "two", "three", "four", "five"))
    branches = split_branches(source)
    codes = tuple(pickle.dumps(rules._compile_source(b)) for b, _ in branches)
    short = Pattern(source, "test", branches=branches, _bcode=codes[:2])  # fewer than branches
    assert short.search_branches("Phrase Number Five", 1.0, [4]).group(0) == "Phrase Number Five"
    stdlib = Pattern("user unknown", "test", _code=pickle.dumps(stdlib_re.compile("user unknown")))
    assert stdlib.search("550 USER UNKNOWN", 1.0).group(0) == "USER UNKNOWN"


def test_a_pack_cache_read_long_after_it_was_written_is_touched(tmp_path, pack_cache):
    # pruning keeps the most recently written files: a cache in use stays among them
    d = _pack(tmp_path, VENDOR)
    load_packs((str(d),))
    (f,) = (tmp_path / "cache").glob("packs-*.pickle")
    os.utime(f, (1_000_000_000, 1_000_000_000))  # written in 2001
    load_packs.cache_clear()
    load_packs((str(d),))
    assert f.stat().st_mtime > 1_000_000_000 + 3600