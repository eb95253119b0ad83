"""Commands for rule-pack authors: ``dsnparse rules check [DIR]`` and ``dsnparse explain FILE``.

``rules check`` validates every pack (the shipped ones, those of ``--rules`` /
``DSNPARSE_RULES``, and ``DIR``) and runs each pack's samples, printing one line per pack.
Where samples are looked for (see ``rules/README.md``):

- ``<root>/samples/<pack id>/NN.eml`` with ``NN.expected.json`` beside it, where ``<root>`` is
  the directory that holds the rules directory (the project checkout for shipped packs,
  ``DIR/..`` for a user directory);
- ``DIR/samples/<pack id>/`` as well, for a self-contained user directory;
- the pack's ``samples:`` list: files or directories relative to ``<root>``.

Exit status of ``rules check``: 0 every pack is valid and every sample gives its expected
result; 1 some sample does not; 2 a pack is broken or ``DIR`` does not exist.

``explain`` parses a message with a trace and prints the packs tried (and why those that
did not recognise it did not), the lines that matched, and how each verdict was reached.
It takes what ``parse`` takes for one file: an .eml file, an mbox (every message is
explained in turn), a source name ``MBOX#N`` or ``MAILDIR#KEY`` as ``parse`` prints it (that
one message; a file whose name really contains ``#`` is taken as it is first), or ``-``
(standard input, one message or, with ``--stdin-format mbox``, an mbox).  Exit status 0, or 1
when some message could not be read (the others are still explained).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable, Optional

from .errors import DsnparseError, RuleError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def register(subparsers) -> None:
    """Add ``rules`` (with ``check``) and ``explain`` to the ``dsnparse`` command."""
    pr = subparsers.add_parser(
        "rules", help="work with rule packs (rules check)",
        description="Commands for rule-pack authors.")
    rsub = pr.add_subparsers(dest="rules_command", metavar="SUBCOMMAND")
    rsub.required = True
    pc = rsub.add_parser(
        "check", help="validate rule packs and run their samples",
        description="Validate the shipped packs, those of --rules / DSNPARSE_RULES and DIR, and "
                    "run every pack's samples (samples/<pack id>/NN.eml + NN.expected.json "
                    "beside the rules directory, DIR/samples/<pack id>/, and the pack's "
                    "'samples:' list). One line per pack.",
        epilog="Exit status: 0 all packs valid and all samples pass; 1 a sample fails; "
               "2 a pack is broken or DIR does not exist.")
    pc.add_argument("dir", nargs="?", metavar="DIR", help="a directory of your own packs")
    pc.add_argument("--rules", metavar="DIR", action="append", default=[],
                    help="extra rule-pack directory (repeatable; also DSNPARSE_RULES)")
    pc.add_argument("--verbose-samples", action="store_true",
                    help="print every sample checked, not only failures")
    pc.set_defaults(func=cmd_check)

    pe = subparsers.add_parser(
        "explain", help="show how one message was parsed (packs tried, rules matched)",
        description="Parse one message (or each message of an mbox) and show which packs "
                    "were tried, which recognised it, the lines that matched and how each "
                    "verdict was reached.",
        epilog="Exit status: 0 every message explained; 1 some input could not be read.")
    pe.add_argument("file", metavar="FILE",
                    help="an .eml file, an mbox (each message), MBOX#N or MAILDIR#KEY (one "
                         "message, as 'parse' names it in 'source'), or - for standard input")
    pe.add_argument("--stdin-format", choices=("message", "mbox"), default="message",
                    help="what - (standard input) holds: one message (default) or an mbox")
    pe.add_argument("--rules", metavar="DIR", action="append", default=[],
                    help="extra rule-pack directory, tried before the shipped packs "
                         "(repeatable; also DSNPARSE_RULES)")
    pe.set_defaults(func=cmd_explain)


# --------------------------------------------------------------------------- rules check

def _dirs(args) -> list:
    """Rule directories in precedence order (user first), each ``(path, samples roots)``."""
    from .cliargs import options_from_args as _options
    from .resources import rules_dir

    opts = _options(args)
    user = ([args.dir] if getattr(args, "dir", None) else []) + list(opts.rules)
    out = []
    for d in user:
        p = Path(d)
        out.append((p, [p / "samples", p.resolve().parent / "samples"]))
    shipped = rules_dir()
    out.append((shipped, [shipped.parent / "samples"]))
    return out


def sample_files(pack, roots: Iterable[Path], base: Path) -> list:
    """The ``.eml`` samples of ``pack``: ``<root>/<pack id>/*.eml`` for every root, and the
    pack's ``samples:`` entries (files or directories, relative to ``base``)."""
    found = []
    for root in roots:
        d = root / pack.id
        if d.is_dir():
            found.extend(sorted(d.glob("*.eml")))
    for s in pack.samples:
        p = base / s
        found.extend(sorted(p.glob("*.eml")) if p.is_dir() else [p])
    uniq, seen = [], set()
    for p in found:
        k = p.resolve()
        if k not in seen:
            seen.add(k)
            uniq.append(p)
    return uniq


def check_sample(path: Path, options) -> list:
    """Parse ``path`` (in LF, CRLF and CR forms) and compare with ``NN.expected.json``.

    Returns:
        A list of problems (empty when the sample gives its expected result).
    """
    from .engine import parse

    exp_path = path.parent / (path.stem + ".expected.json")
    if not path.is_file():
        return [f"{path}: no such sample"]
    if not exp_path.is_file():
        return [f"{path}: no {exp_path.name} beside it"]
    try:
        exp = json.loads(exp_path.read_text(encoding="utf-8"))
    except ValueError as e:
        return [f"{exp_path}: bad JSON: {e}"]
    lf = path.read_bytes().replace(b"\r\n", b"\n")
    problems = []
    for ending, data in (("lf", lf), ("crlf", lf.replace(b"\n", b"\r\n")),
                         ("cr", lf.replace(b"\n", b"\r"))):
        try:
            report = parse(data, options)
        except DsnparseError as e:
            problems.append(f"{path.name} ({ending}): {e}")
            continue
        for key, want in exp.items():
            if key != "verdicts" and getattr(report, key, None) != want:
                problems.append(f"{path.name} ({ending}): {key} is {getattr(report, key, None)!r}, "
                                f"expected {want!r}")
        want_v = exp.get("verdicts", [])
        if len(report.verdicts) != len(want_v):
            problems.append(f"{path.name} ({ending}): {len(report.verdicts)} verdicts, "
                            f"expected {len(want_v)}")
            continue
        for got, want in zip(report.verdicts, want_v):
            for key, value in want.items():
                if getattr(got, key, None) != value:
                    problems.append(f"{path.name} ({ending}): {got.final_recipient}: {key} is "
                                    f"{getattr(got, key, None)!r}, expected {value!r}")
        if problems:
            break  # one line ending is enough to show what is wrong
    return problems


def cmd_check(args) -> int:
    from . import rules
    from .cliargs import options_from_args as _options

    dirs = _dirs(args)
    for d, _ in dirs:
        if not d.is_dir():
            print(f"dsnparse: error: {d}: rules directory does not exist", file=sys.stderr)
            return EXIT_USAGE
    broken = 0
    effective: dict = {}   # id -> (pack, sample roots, base)
    overridden = []
    for d, roots in dirs:
        for pid, p in rules.pack_files(d):
            try:
                pack = rules.load_pack(p, pid)
            except RuleError as e:
                broken += 1
                print(f"BROKEN {e}")
                continue
            if pack.id in effective:
                overridden.append((pack, effective[pack.id][0]))
                continue
            effective[pack.id] = (pack, roots, roots[-1].parent)
    if broken:
        print(f"{broken} broken pack(s); samples not run", file=sys.stderr)
        return EXIT_USAGE
    opts = _options(args)
    user = tuple(str(d) for d, _ in dirs[:-1])
    opts = opts.replace(rules=user)
    try:
        rules.load_packs(user)
    except RuleError as e:  # e.g. two packs of one directory with the same id
        print(f"BROKEN {e}")
        return EXIT_USAGE
    failed = 0
    for pid in sorted(effective, key=lambda i: (effective[i][0].order, i)):
        pack, roots, base = effective[pid]
        files = sample_files(pack, roots, base)
        problems = []
        for f in files:
            ps = check_sample(f, opts)
            problems.extend(ps)
            if args.verbose_samples and not ps:
                print(f"  ok {f}")
        status = "FAIL" if problems else "ok"
        failed += bool(problems)
        note = f"{len(files)} sample(s)" if files else "no samples"
        print(f"{status:4} {pid} (order {pack.order}, {pack.kind}, {pack.path}): {note}"
              + (f", {len(problems)} problem(s)" if problems else ""))
        for pr in problems:
            print(f"     {pr}")
    for pack, by in overridden:
        print(f"--   {pack.id} ({pack.path}): overridden by {by.path}")
    return EXIT_FAIL if failed else EXIT_OK


# --------------------------------------------------------------------------- explain

def cmd_explain(args) -> int:
    """``dsnparse explain FILE``: every message FILE holds (see the module docstring)."""
    import os

    from .cliargs import options_from_args as _options
    from .errors import SourceError
    from .rules import load_packs
    from .sources import iter_messages, resolve

    opts = _options(args)
    if args.file != "-" and os.path.isdir(args.file):
        print(f"dsnparse: {args.file}: is a directory (explain takes one file; "
              f"`dsnparse parse` takes directories)", file=sys.stderr)
        return EXIT_FAIL
    packs = load_packs(tuple(opts.rules))
    status, shown = EXIT_OK, 0
    try:
        for source, data in iter_messages(args.file, opts, stdin_format=args.stdin_format):
            data = resolve(data, opts.max_message_bytes)
            if isinstance(data, SourceError):
                print(f"dsnparse: {data}", file=sys.stderr)
                status = EXIT_FAIL
                continue
            if shown:
                print()
            _explain_one(source, data, opts, packs)
            shown += 1
    except SourceError as e:
        print(f"dsnparse: {e}", file=sys.stderr)
        return EXIT_FAIL
    except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return status


def _explain_one(source: str, data: bytes, opts, packs) -> None:
    from .engine import parse

    trace: list = []
    try:
        report = parse(data, opts, trace=trace)
    except DsnparseError as e:
        if isinstance(e, RuleError):
            raise
        print(f"message: {source}")
        print(f"result:  not an email: {e}")
        return
    print(f"message: {source}")
    if report.subject:
        print(f"subject: {report.subject}")
    if report.from_:
        print(f"from:    {report.from_}")
    print(f"packs:   {len(packs)} loaded ({sum(1 for p in packs if p.detects)} with detection; "
          f"user directories: {', '.join(opts.rules) or 'none'})")
    print("steps:")
    for line in trace:
        print(f"  - {line}")
    print(f"result:  kind {report.kind}, format {report.format or '-'}, "
          f"{len(report.verdicts)} verdict(s)")
    for v in report.verdicts:
        bits = [f"status {v.status or '-'} ({v.status_source or '-'})",
                f"reply {v.reply_code or '-'}", f"code {v.code or '-'} {v.bounce_type or ''}".rstrip(),
                f"reason {v.reason or '-'}", f"rule {v.rule or '-'}"]
        if v.fault:
            bits.insert(4, f"fault {v.fault} ({v.fault_rule or '-'})")
        if v.feedback_type:
            bits.insert(0, f"feedback-type {v.feedback_type}")
        print(f"  {v.final_recipient or '(no recipient)'}: action {v.action or '-'}, " + ", ".join(bits))
        if v.diagnostic_code:
            print(f"      diagnostic: {_short(v.diagnostic_code)}")
    for line in _defects(data):
        print(line)


def _defects(data: bytes) -> list:
    """The message's RFC 5322 / MIME defects, per part, as mail-parser reports them (it
    parses with ``policy.default``, which checks address headers too).  ``parse`` itself
    stays on the fast compat32 path; this report is only for a person reading ``explain``."""
    import logging

    class _Keep(logging.Handler):  # mail-parser logs what it cannot decode: a defect too
        def __init__(self):
            super().__init__(logging.WARNING)
            self.messages: list = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    log = logging.getLogger("mailparser")
    keep, propagate = _Keep(), log.propagate
    log.addHandler(keep)
    log.propagate = False
    try:
        import mailparser

        mp = mailparser.parse_from_bytes(data)
    except Exception as e:  # noqa: BLE001 - a defect report must never stop explain
        return [f"defects: mail-parser could not read the message ({type(e).__name__})"]
    finally:
        log.removeHandler(keep)
        log.propagate = propagate
    logged = list(dict.fromkeys(keep.messages))  # (each once)
    if not mp.has_defects and not logged:
        return ["defects: none (mail-parser)"]
    out = ["defects (mail-parser):"]
    for entry in mp.defects:
        for where, items in entry.items():
            for item in items:
                out.append(f"  {where}: {_short(item)}")
    out.extend(f"  {_short(m)}" for m in logged)
    return out


def _short(text: Optional[str], n: int = 160) -> str:
    t = " ".join((text or "").split())
    return t if len(t) <= n else t[: n - 1] + "…"
