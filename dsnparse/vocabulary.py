"""Multilingual bounce vocabulary as data: ``rules/lang/<language>.yaml``.

One file per language (``en``, ``fr``, ``de``, ``ja``, ``zh-Hans`` …) lists how mail systems
that write in that language word a bounce: ``subject`` (subjects of non-delivery notices),
``body`` (sentences saying a message could not be delivered or was returned), ``delay``
(sentences saying delivery is delayed and still being tried), ``labels`` (labels that
introduce the failed recipient: "Empfänger", "Destinataire", "宛先", "收件人" …), ``senders``
(the local names of the mail system in a notice's ``From``: "Mail Delivery System",
"Système de distribution du courrier" …), ``original`` (the titles of the returned
original's separator line: "Original message", "Ursprüngliche Nachricht", "原始邮件") and
``reasons`` (reason name from
``rules/reasons.yaml`` → phrases that state it).  See ``rules/README.md`` "Vocabulary".

Packs use the vocabulary through placeholders, expanded when the pack is loaded:
``{{lang.subject}}``, ``{{lang.body}}``, ``{{lang.delay}}``, ``{{lang.labels}}``,
``{{lang.senders}}`` and ``{{lang.original}}`` become an alternation of every language's entries of that section
(a pattern that is nothing but the placeholder becomes a top-level alternation, which the
loader splits into branches run only when their literals occur; elsewhere a group
``(?:…)``).  The ``reasons`` sections form one shared text-rule pack, ``lang/reasons``
(order 950: after the vendor, remote-host and English rules of ``rules/standard/text.yaml``).

A phrase is plain text, not a pattern: it is matched case-insensitively, any run of white
space in it matches any run of white space (a line break included), and an apostrophe
matches ``'`` or ``’``.  Every phrase of ``subject``, ``body``, ``delay`` and ``reasons``
holds a run of at least 3 characters without white space, so that the prefilter can skip
patterns whose phrases are absent (``rules/README.md`` "Cost: the prefilter").  A phrase is
a literal sequence, so the expanded alternation is linear on any input.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Optional

from .errors import RuleError

SECTIONS = ("subject", "body", "delay", "labels", "senders", "original")
_KEYS = {"language", "name", "description", "reasons", *SECTIONS}
# Sections whose phrases must carry a literal the prefilter can look for.
_PREFILTERED = ("subject", "body", "delay", "reasons")
_MIN_RUN = 3
MAX_PHRASE = 200  # characters: a phrase is a label or a sentence, not a text

# The precedence of the shared reason rules (first match wins, as in rules/standard/text.yaml):
# specific conditions before the general ones they are often worded with.
REASON_ORDER = (
    "mailer_error", "mailbox_full", "exceed_limit", "mesg_too_big", "virus_detected",
    "spam_detected", "auth_failure", "require_ptr", "bad_reputation", "suspend",
    "has_moved", "user_unknown", "host_unknown", "no_relaying", "network_error",
    "expired", "system_full", "system_error", "too_many_conn", "speeding",
    "not_compliant_rfc", "content_error", "security_error", "policy_violation",
    "syntax_error", "not_accept", "blocked", "filtered", "rejected", "on_hold",
)

LANG_DIR = "lang"  # under a rules directory
REASON_PACK_ID = "lang/reasons"
REASON_PACK_ORDER = 950

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_WS = re.compile(r"\s+")


def lang_dir(rules_directory) -> Path:
    """The vocabulary directory of a rules directory: ``<rules>/lang``."""
    return Path(rules_directory) / LANG_DIR


def lang_files(rules_directory) -> list:
    """The language files (``*.yaml``) of a rules directory, sorted by name; ``[]`` when it
    has no ``lang/`` directory."""
    d = lang_dir(rules_directory)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir()
                  if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file())


def phrase_pattern(phrase: str) -> str:
    """The pattern of one phrase: its characters literally (``regex`` syntax escaped), white
    space runs as ``\\s+``, an apostrophe as ``['’]``."""
    out = []
    for i, word in enumerate(_WS.split(phrase.strip())):
        if i:
            out.append(r"\s+")
        pieces = re.split("['’]", word)
        out.append("['’]".join(re.escape(p) for p in pieces))
    return "".join(out)


def _plain(ch: str) -> bool:
    """A character the prefilter can look for as written, whatever the case (mirrors
    ``rules._fold_safe``): ASCII, a letter without case (CJK, kana, Hangul, Hebrew, Arabic,
    Devanagari) or a combining mark that belongs to such a word (a Devanagari vowel sign or
    virama), or Cyrillic or Greek."""
    if ch.isascii():
        return not ch.isspace() and ch not in "'’"
    if ch.lower() == ch.upper():
        return (ch.isalpha() or _caseless_mark(ch)) and ch.casefold() == ch
    return ("\u0400" <= ch <= "\u04ff" or "\u0370" <= ch <= "\u03ff") and len(ch.casefold()) == 1


def _caseless_mark(ch: str) -> bool:
    """A spacing or non-spacing combining mark (Unicode categories Mc, Mn) of a script
    without case: part of the word it is written in (Devanagari ि, ्)."""
    import unicodedata

    return unicodedata.category(ch) in ("Mn", "Mc")


def _longest_run(phrase: str) -> int:
    """The longest run of :func:`_plain` characters: the literal the prefilter will use."""
    best = run = 0
    for ch in phrase:
        run = run + 1 if _plain(ch) else 0
        best = max(best, run)
    return best


class Vocabulary:
    """The merged vocabulary of a set of rules directories.

    Attributes:
        languages: ``{language code: path of its file}``.
        sections: ``{section: tuple of (language, phrase)}`` for each of :data:`SECTIONS`.
        reasons: ``{reason: tuple of (language, phrase)}``.
    """

    def __init__(self, files: Iterable[Path]):
        from .codes import REASONS

        self.languages: dict = {}
        self.sections: dict = {s: [] for s in SECTIONS}
        self.reasons: dict = {}
        for path in files:
            self._load(Path(path), REASONS)
        self.sections = {s: tuple(_dedupe(v)) for s, v in self.sections.items()}
        self.reasons = {r: tuple(_dedupe(v)) for r, v in self.reasons.items()}

    def _load(self, path: Path, known_reasons) -> None:
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as e:
            raise RuleError(path, f"cannot read: {e}") from None
        except yaml.YAMLError as e:
            raise RuleError(path, f"bad YAML: {e}".replace("\n", " ")) from None
        if not isinstance(data, dict):
            raise RuleError(path, "a language file must be a YAML mapping")
        for k in data:
            if k not in _KEYS:
                raise RuleError(path, f"unknown key (allowed: {', '.join(sorted(_KEYS))})", None, str(k))
        lang = data.get("language")
        if not isinstance(lang, str) or not lang.strip():
            raise RuleError(path, "expected the language code (e.g. 'de', 'zh-Hant')", None, "language")
        for k in ("name", "description"):
            if k in data and not isinstance(data[k], str):
                raise RuleError(path, f"expected str, got {type(data[k]).__name__}", None, k)
        self.languages[lang] = str(path)
        for s in SECTIONS:
            for phrase in self._phrases(path, data.get(s, []), s, s in _PREFILTERED):
                self.sections[s].append((lang, phrase))
        reasons = data.get("reasons", {})
        if not isinstance(reasons, dict):
            raise RuleError(path, f"expected a mapping of reason -> phrases, got {type(reasons).__name__}",
                            None, "reasons")
        for reason, phrases in reasons.items():
            if reason not in known_reasons:
                raise RuleError(path, f"unknown reason {reason!r} (see rules/reasons.yaml)", None,
                                f"reasons.{reason}")
            if reason not in REASON_ORDER:
                raise RuleError(path, f"reason {reason!r} is not one a text states (not a failure "
                                      "cause)", None, f"reasons.{reason}")
            for phrase in self._phrases(path, phrases, f"reasons.{reason}", True):
                self.reasons.setdefault(reason, []).append((lang, phrase))

    @staticmethod
    def _phrases(path, items, where, prefiltered) -> list:
        if items is None:
            return []
        if not isinstance(items, list):
            raise RuleError(path, f"expected a list of phrases, got {type(items).__name__}", None, where)
        out = []
        for i, p in enumerate(items):
            if not isinstance(p, str) or not p.strip():
                raise RuleError(path, "expected a non-empty phrase string", None, f"{where}[{i}]")
            if len(p) > MAX_PHRASE:
                raise RuleError(path, f"phrase longer than {MAX_PHRASE} characters", None, f"{where}[{i}]")
            if prefiltered and _longest_run(p) < _MIN_RUN:
                raise RuleError(path, f"phrase {p!r} has no run of {_MIN_RUN} characters without "
                                      "white space or accented letters: the prefilter could not "
                                      "skip it", None, f"{where}[{i}]")
            out.append(" ".join(p.split()))
        return out

    def alternation(self, section: str) -> list:
        """The patterns of every phrase of ``section``, longest first (so that a phrase that
        begins another does not hide it in a leftmost-first alternation)."""
        phrases = [p for _, p in self.sections[section]]
        return [phrase_pattern(p) for p in sorted(phrases, key=lambda p: (-len(p), p))]

    def expand(self, source: str, path, rule=None, fieldname=None) -> str:
        """``source`` with its ``{{lang.SECTION}}`` placeholders expanded.

        Raises:
            RuleError: an unknown placeholder, or a section with no phrase in any language.
        """
        top = _top_level_branches(source)

        def sub(m):
            name = m.group(1)
            section = name[5:] if name.startswith("lang.") else None
            if section not in SECTIONS:
                raise RuleError(path, f"unknown placeholder {m.group(0)!r} (allowed: "
                                      f"{', '.join('{{lang.%s}}' % s for s in SECTIONS)})", rule, fieldname)
            alts = self.alternation(section)
            if not alts:
                raise RuleError(path, f"placeholder {m.group(0)!r}: no language file has "
                                      f"'{section}' phrases", rule, fieldname)
            body = "|".join(alts)
            return body if (m.start(), m.end()) in top else f"(?:{body})"

        return _PLACEHOLDER.sub(sub, source)

    def reason_pack_data(self) -> Optional[dict]:
        """The shared text-rule pack made of the ``reasons`` sections (as a pack's YAML data),
        one rule per reason in :data:`REASON_ORDER`; ``None`` when no file has reasons."""
        rules = []
        for reason in REASON_ORDER:
            phrases = [p for _, p in self.reasons.get(reason, ())]
            if phrases:
                alts = [phrase_pattern(p) for p in sorted(phrases, key=lambda p: (-len(p), p))]
                rules.append({"id": reason, "pattern": "|".join(alts), "reason": reason})
        if not rules:
            return None
        return {
            "id": REASON_PACK_ID,
            "order": REASON_PACK_ORDER,
            "description": "Reason phrases of rules/lang/*.yaml (every language), applied to any "
                           "MTA's diagnostic after the vendor, remote-host and English rules.",
            "text_rules": rules,
        }


def _top_level_branches(source: str) -> set:
    """``(start, end)`` of the top-level branches of a pattern (split at ``|`` outside any
    group or class): a placeholder that is a whole branch expands without a group, so the
    loader can split the alternation into its phrases (``rules.split_branches``)."""
    from .backtrack import top_level_bars

    try:
        bars, _ = top_level_bars(source)
    except ValueError:  # an unterminated class: the pattern will not compile anyway
        return set()
    starts = [0] + [b + 1 for b in bars]
    return set(zip(starts, bars + [len(source)]))


def _dedupe(pairs) -> list:
    seen, out = set(), []
    for lang, p in pairs:
        k = p.casefold()
        if k not in seen:
            seen.add(k)
            out.append((lang, p))
    return out


def files_for(dirs: Iterable) -> list:
    """The language files of rules directories given first-wins (user directories before the
    shipped one): a file of a later directory is replaced by one of the same name earlier."""
    chosen: dict = {}
    for d in dirs:
        for p in lang_files(d):
            chosen.setdefault(p.name, p)
    return [chosen[n] for n in sorted(chosen)]


@lru_cache(maxsize=8)
def _load(files: tuple) -> Vocabulary:
    return Vocabulary(Path(f) for f, _, _ in files)


def _stat(p: Path) -> tuple:
    try:
        st = p.stat()
        return str(p), st.st_mtime_ns, st.st_size
    except OSError:
        return str(p), None, None


def load_vocabulary(dirs: Iterable) -> Vocabulary:
    """The :class:`Vocabulary` of rules directories (first wins, see :func:`files_for`).

    Raises:
        RuleError: a broken language file (bad YAML, an unknown key or reason, a phrase too
            short for the prefilter); the message names the file and the key.
    """
    return _load(tuple(_stat(p) for p in files_for(dirs)))
