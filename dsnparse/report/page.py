"""The report page: one self-contained HTML file from the :class:`~.queries.Figures`.

Self-contained means: the styles are inline, the charts are inline SVG
(:mod:`dsnparse.report.charts`), there is no script, no font, no image and no link to any
other host, and a ``Content-Security-Policy`` (``default-src 'none'``) makes the browser
refuse any request the page might still try (a hostile domain or diagnostic is escaped text,
never markup).  The file reads offline and as an email attachment.

Sections, each chart with a table of its numbers beside it (the page reads without colour):
``summary``, ``sender`` (sender-side problems, at the top when there are any, else last),
``daily``, ``domains``, ``reasons``, ``suppressions``, ``campaigns`` (the ``id`` of each
``<section>``).
"""
from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Callable, Optional, Sequence

from ..model import FAULTS
from . import charts
from .queries import Figures, Period
from .texts import texts

SECTIONS = ("summary", "sender", "daily", "domains", "reasons", "suppressions", "campaigns")
"""The ``id`` of every ``<section>`` of the page (the sender one moves to the top when it
has rows)."""

_MAX_DAYS = 120     # a longer period is drawn per week, and
_MAX_WEEKS = 104    # a longer one per month,
_MAX_MONTHS = 120   # and a longer one still per year
_EXAMPLE_CHARS = 240

CSS = """
:root{--fg:#1d1d1f;--muted:#5f6368;--line:#e3e3e3;--bg:#fff;--warn:#fff4e5;--warnline:#f0a030}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;
 color:var(--fg);background:var(--bg);margin:0;padding:24px 32px;max-width:1280px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:0 0 10px}
.meta{color:var(--muted);margin:0 0 18px}
section{border-top:1px solid var(--line);padding:16px 0 8px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid var(--line);border-radius:8px;padding:6px 12px;min-width:96px}
.card b{display:block;font-size:20px}.card span{color:var(--muted);font-size:12px}
.pair{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:18px;align-items:start;
 margin-bottom:14px}
@media (max-width:900px){.pair{grid-template-columns:1fr}}
.numbers.all{max-height:none;background:#fff}
figure{margin:0}figure svg{max-width:100%;height:auto}
.numbers{max-height:380px;overflow:auto;border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
td.w{overflow-wrap:anywhere;min-width:12em}
th{background:#f6f6f6;position:sticky;top:0}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.d{white-space:nowrap}
caption{caption-side:top;text-align:left;color:var(--muted);font-size:12px;padding:4px 8px}
.alert{background:var(--warn);border:1px solid var(--warnline);border-radius:8px;padding:12px 16px}
.alert h2{color:#8a4b00}
.diag{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:11.5px;word-break:break-word}
.empty{color:var(--muted)}
footer{color:var(--muted);font-size:12px;border-top:1px solid var(--line);padding-top:10px;margin-top:10px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:0}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


class _Page:
    def __init__(self, lang: str):
        self.lang = lang
        self.t = texts(lang)

    def n(self, value: Optional[int]) -> str:
        s = f"{int(value or 0):,}"
        return s.replace(",", "\u202f") if self.lang == "fr" else s

    @staticmethod
    def day(value: Optional[float]) -> str:
        if value is None:
            return ""
        return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M")

    def fault(self, f: Optional[str]) -> str:
        return self.t.get(f"fault_{f}", f) if f else self.t["fault_none"]

    def table(self, head: Sequence[str], rows: Sequence[Sequence[str]], numeric: set,
              caption: Optional[str] = None, nowrap: frozenset = frozenset(),
              wrap: frozenset = frozenset()) -> str:
        """An HTML table; cells are already escaped; columns in ``numeric`` align right,
        those in ``nowrap`` do not wrap, those in ``wrap`` break anywhere (long tokens)."""
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{_e(caption)}</caption>")
        out.append("<thead><tr>" + "".join(
            f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
            for i, h in enumerate(head)) + "</tr></thead><tbody>")
        for r in rows:
            out.append("<tr>" + "".join(
                f'<td class="n">{c}</td>' if i in numeric else
                f'<td class="d">{c}</td>' if i in nowrap else
                f'<td class="w">{c}</td>' if i in wrap else f"<td>{c}</td>"
                for i, c in enumerate(r)) + "</tr>")
        out.append("</tbody></table>")
        return "".join(out)

    def pair(self, svg: str, table: str) -> str:
        """A chart with the table of its numbers beside it."""
        return (f'<div class="pair"><figure>{svg}</figure>'
                f'<div class="numbers">{table}</div></div>')

    def swatch(self, key: str) -> str:
        return (f'<span class="swatch" style="background:{charts.COLOURS.get(key, "#0072B2")}">'
                f'</span>')


def _buckets(days: Sequence[int]) -> tuple[list[int], Callable[[int], int], str]:
    """The buckets of a time chart over ``days`` (day numbers): ``(bucket starts, day -> its
    bucket's start, unit)``: every day from the first to the last when that is at most
    :data:`_MAX_DAYS` days, else every week (from Monday), else every month (from the 1st),
    else every year; so a chart has at most ~120 buckets, whatever the dates in the ledger."""
    lo, hi = min(days), max(days)
    if hi - lo + 1 <= _MAX_DAYS:
        return list(range(lo, hi + 1)), (lambda d: d), "day"
    if (hi - lo) // 7 + 1 <= _MAX_WEEKS:
        def monday(d: int) -> int:
            return d - (d + 3) % 7     # day 0 (1970-01-01) was a Thursday
        return list(range(monday(lo), monday(hi) + 1, 7)), monday, "week"

    def first(d: int) -> int:
        day = charts.day_of(d)
        return (day.replace(day=1) - charts.day_of(0)).days

    def january(d: int) -> int:
        day = charts.day_of(d)
        return (day.replace(month=1, day=1) - charts.day_of(0)).days
    step, unit = (first, "month") if (hi - lo) // 30 < _MAX_MONTHS else (january, "year")
    starts, d = [], step(lo)
    while d <= hi:
        starts.append(d)
        d = step(d + (32 if unit == "month" else 366))
    return starts, step, unit


def _label(d: int, unit: str) -> str:
    day = charts.day_of(d)
    return {"month": day.strftime("%Y-%m"), "year": str(day.year)}.get(unit, day.isoformat())


def render(fig: Figures, *, period: Period, lang: str = "en", source: str = "",
           generated: Optional[float] = None) -> str:
    """Return the report page (``str``, one HTML document).

    Args:
        fig: the figures (:func:`dsnparse.report.queries.collect`).
        period: the period they cover (shown in the header).
        lang: ``"en"`` or ``"fr"`` (the page's words and the seed table's descriptions).
        source: what the figures were read from (a ledger path, the inputs), shown as is.
        generated: the time shown as "generated" (epoch seconds; default now).

    Raises:
        ValueError: an unknown ``lang``.
        ImportError: matplotlib is missing.
    """
    import time

    from ..codes import load_table, title as status_title
    from ..reasons import load_reasons

    p = _Page(lang)
    t = p.t
    codes = load_table()
    reasons = load_reasons()
    gen = time.time() if generated is None else generated
    tot = fig.totals

    # -- header and summary
    if period.since is None and period.until is None:
        span = t["all_time"]
        if tot.get("first") is not None:
            span += f" ({p.day(tot['first'])} – {p.day(tot['last'])} UTC)"
    else:
        span = f"{p.day(period.since) or '…'} – {p.day(period.until) or '…'} UTC"
    head = (f'<h1>{_e(t["title"])}</h1><p class="meta">{_e(t["period"])}: {_e(span)} · '
            f'{_e(t["generated"])} {_e(p.day(gen))} UTC · {_e(t["source"])}: {_e(source)}</p>')
    cards = [
        (tot.get("bounce", 0), t["bounces"]), (tot.get("hard", 0), t["hard"]),
        (tot.get("soft", 0), t["soft"]), (tot.get("delay", 0), t["delays"]),
        (tot.get("complaint", 0), t["complaints"]),
        (tot.get("addresses", 0), t["addresses_bounced"]),
        (fig.suppressed_total, t["suppressed_now"]), (fig.review_total, t["pending_review"]),
    ]
    summary = ('<section id="summary"><h2>' + _e(t["summary"]) + '</h2><div class="cards">'
               + "".join(f"<div class=\"card\"><b>{p.n(v)}</b><span>{_e(lbl)}</span></div>"
                         for v, lbl in cards) + "</div></section>")

    sections = {"sender": _sender(p, fig), "daily": _daily(p, fig),
                "domains": _domains(p, fig), "reasons": _reasons(p, fig, codes, reasons,
                                                                 status_title),
                "suppressions": _suppressions(p, fig), "campaigns": _campaigns(p, fig)}
    order = (["sender", "daily", "domains", "reasons", "suppressions", "campaigns"]
             if fig.sender else
             ["daily", "domains", "reasons", "suppressions", "campaigns", "sender"])
    body = head + summary + "".join(sections[k] for k in order)
    return ("<!DOCTYPE html>\n"
            f'<html lang="{lang}"><head><meta charset="utf-8">'
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            'style-src \'unsafe-inline\'; img-src data:">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="referrer" content="no-referrer">'
            f"<title>{_e(t['title'])} · {_e(span)}</title><style>{CSS}</style></head>"
            f"<body>{body}<footer>{_e(t['footer'])}</footer></body></html>\n")


# --------------------------------------------------------------------------- sections

def _sender(p: _Page, fig: Figures) -> str:
    t = p.t
    if not fig.sender:
        return (f'<section id="sender"><h2>{_e(t["sender_title"])}</h2>'
                f'<p class="empty">{_e(t["sender_none"])}</p></section>')
    kinds = fig.sender_kinds
    svg = charts.hbars("ch-sender", t["sender_chart"], [t[f"cat_{k[0]}"] for k in kinds],
                       {"sender": [k[1] for k in kinds]}, width=4.2)
    rows = []
    for dom, cat, n, a, first, last, status, example, mta in fig.sender:
        ex = " ".join((example or "").split())
        if len(ex) > _EXAMPLE_CHARS:
            ex = ex[:_EXAMPLE_CHARS - 1] + "…"
        rows.append([_e(dom), _e(t[f"cat_{cat}"]), p.n(n), p.n(a), _e(p.day(first)[:10]),
                     _e(p.day(last)[:10]), _e(status), f'<span class="diag">{_e(ex)}</span>'
                     + (f"<br><small>{_e(t['remote_mta'])}: {_e(mta)}</small>" if mta else "")])
    table = p.table([t["domain"], t["category"], t["events"], t["addresses"], t["since"],
                     t["last"], t["status"], t["example"]], rows, {2, 3},
                    nowrap=frozenset({4, 5}))
    return (f'<section id="sender" class="alert"><div class="pair">'
            f'<div><h2>{_e(t["sender_title"])}</h2><p>{_e(t["sender_intro"])}</p></div>'
            f'<figure>{svg}</figure></div><div class="numbers all">{table}</div></section>')


def _daily(p: _Page, fig: Figures) -> str:
    t = p.t
    if not fig.daily:
        return (f'<section id="daily"><h2>{_e(t["daily_title"])}</h2>'
                f'<p class="empty">{_e(t["nothing"])}</p></section>')
    days, bucket, unit = _buckets([r[0] for r in fig.daily])
    index = {d: i for i, d in enumerate(days)}

    def slot(d: int) -> int:
        return index[bucket(d)]
    faults = list(FAULTS) + ["none"]
    by_fault = {f: [0] * len(days) for f in faults}
    kinds = {k: [0] * len(days) for k in ("hard", "soft", "delay", "complaint")}
    for day, kind, btype, fault, n in fig.daily:
        i = slot(day)
        if kind == "bounce":
            by_fault[fault if fault in FAULTS else "none"][i] += n
            if btype in ("hard", "soft"):
                kinds[btype][i] += n
        elif kind in kinds:
            kinds[kind][i] += n
    labels = {f: p.fault(None if f == "none" else f) for f in faults}
    per = t[f"u_{unit}"]
    svg1 = charts.stacked_days("ch-daily", t["daily_faults"].format(unit=per), days, by_fault,
                               labels, unit)
    klabels = {"hard": t["hard"], "soft": t["soft"], "delay": t["delays"],
               "complaint": t["complaints"]}
    svg2 = charts.stacked_days("ch-kinds", t["daily_kinds"].format(unit=per), days, kinds,
                               klabels, unit)
    used = [f for f in faults if any(by_fault[f])]
    rows = []
    for i, d in enumerate(days):
        total = sum(by_fault[f][i] for f in faults)
        if not total and not any(kinds[k][i] for k in kinds):
            continue
        rows.append([_label(d, unit),
                     p.n(total)] + [p.n(kinds[k][i]) for k in kinds]
                    + [p.n(by_fault[f][i]) for f in used])
    head = ([t[unit], t["bounces"]] + [klabels[k] for k in kinds]
            + [labels[f].split(" (")[0] for f in used])
    table = p.table(head, rows, set(range(1, len(head))), caption=t["table_note"],
                    nowrap=frozenset({0}))
    return (f'<section id="daily"><h2>{_e(t["daily_title"])}</h2>'
            f'<div class="pair"><figure>{svg1}{svg2}</figure>'
            f'<div class="numbers">{table}</div></div></section>')


def _domains(p: _Page, fig: Figures) -> str:
    t = p.t
    if not fig.domains:
        return (f'<section id="domains"><h2>{_e(t["domains_title"])}</h2>'
                f'<p class="empty">{_e(t["nothing"])}</p></section>')
    used = [f for f in FAULTS if any(r[2].get(f) for r in fig.domains)]
    svg = charts.hbars("ch-domains", t["domains_chart"], [r[0] for r in fig.domains],
                       {f: [r[2].get(f, 0) for r in fig.domains] for f in used},
                       {f: p.fault(f) for f in used})
    rows = [[_e(d), p.n(n)] + [p.n(fs.get(f, 0)) for f in used] for d, n, fs in fig.domains]
    head = [t["domain"], t["events"]] + [
        p.fault(f).split(" (")[0] for f in used]
    table = p.table(head, rows, set(range(1, len(head))), caption=t["table_note"],
                    wrap=frozenset({0}))
    return (f'<section id="domains"><h2>{_e(t["domains_title"])}</h2>'
            f'{p.pair(svg, table)}</section>')


def _reasons(p: _Page, fig: Figures, codes, reasons, status_title) -> str:
    t = p.t
    if not fig.reasons:
        return (f'<section id="reasons"><h2>{_e(t["reasons_title"])}</h2>'
                f'<p class="empty">{_e(t["nothing"])}</p></section>')
    faults = [getattr(reasons.get(r[0]), "fault", None) for r in fig.reasons]
    svg = charts.hbars("ch-reasons", t["reasons_chart"], [r[0] for r in fig.reasons],
                       {"bounce": [r[1] for r in fig.reasons]})
    rows = [[_e(r), p.n(n), p.swatch(f or "unknown") + _e(p.fault(f))]
            for (r, n), f in zip(fig.reasons, faults)]
    table = p.table([t["reason"], t["events"], t["fault"]], rows, {1},
                    caption=t["table_note"])
    desc = "description_fr" if p.lang == "fr" else "description"
    crows = []
    for code, btype, n in fig.codes:
        row = codes.row(code) if code else None
        text = getattr(row, desc, None) if row else None
        if text is None:   # a 4YZ code that is not a seed row: the registry title (English)
            text = status_title(f"{code[0]}.{code[1]}.{code[2:]}") if code and len(code) == 3 \
                else None
        crows.append([_e(code), _e(t.get(btype, btype)), _e(text), p.n(n)])
    ctable = p.table([t["code"], t["type"], t["description"], t["events"]], crows, {3})
    srows = [[_e(s), _e(status_title(s)), p.n(n)] for s, n in fig.statuses]
    stable = p.table([t["status"], t["registry_title"], t["events"]], srows, {2})
    return (f'<section id="reasons"><h2>{_e(t["reasons_title"])}</h2>'
            f'{p.pair(svg, table)}'
            f'<div class="pair"><div class="numbers">{ctable}</div>'
            f'<div class="numbers">{stable}</div></div></section>')


_BASES = ("hard", "soft", "complaint", "review")


def _suppressions(p: _Page, fig: Figures) -> str:
    t = p.t
    parts = [f'<section id="suppressions"><h2>{_e(t["suppr_title"])}</h2>']
    if fig.suppressed_daily:
        days, bucket, unit = _buckets([r[0] for r in fig.suppressed_daily])
        index = {d: i for i, d in enumerate(days)}
        series = {b: [0] * len(days) for b in _BASES}
        for day, basis, n in fig.suppressed_daily:
            i = index[bucket(day)]
            series[basis if basis in series else "hard"][i] += n
        labels = {b: t[f"basis_{b}"] for b in _BASES}
        svg = charts.stacked_days("ch-suppr", t["suppr_chart"].format(unit=t[f"u_{unit}"]),
                                  days, series, labels, unit)
        used = [b for b in _BASES if any(series[b])]
        rows = [[_label(d, unit),
                 p.n(sum(series[b][i] for b in _BASES))] + [p.n(series[b][i]) for b in used]
                for i, d in enumerate(days) if any(series[b][i] for b in _BASES)]
        head = [t[unit], t["total"]] + [labels[b] for b in used]
        table = p.table(head, rows, set(range(1, len(head))), caption=t["table_note"],
                        nowrap=frozenset({0}))
        parts.append(p.pair(svg, table))
    else:
        parts.append(f'<p class="empty">{_e(t["suppr_none"])}</p>')
    parts.append(f'<h2 id="review">{_e(t["review_title"])} ({p.n(fig.review_total)})</h2>')
    if fig.review:
        rows = [[_e(a), _e(p.day(s)), _e(r), _e(c), _e(st), _e(tags.replace(",", ", "))]
                for a, s, r, c, st, tags in fig.review]
        parts.append('<div class="numbers">' + p.table(
            [t["address"], t["since"], t["reason"], t["code"], t["status"], t["tags"]],
            rows, set(), nowrap=frozenset({1})) + "</div>")
        if fig.review_total > len(fig.review):
            parts.append('<p class="empty">' + _e(t["review_more"].format(
                shown=p.n(len(fig.review)), total=p.n(fig.review_total))) + "</p>")
    else:
        parts.append(f'<p class="empty">{_e(t["review_none"])}</p>')
    parts.append("</section>")
    return "".join(parts)


def _campaigns(p: _Page, fig: Figures) -> str:
    t = p.t
    if not fig.campaigns:
        return (f'<section id="campaigns"><h2>{_e(t["campaigns_title"])}</h2>'
                f'<p class="empty">{_e(t["campaigns_none"])}</p></section>')
    labels = [c for c, *_ in fig.campaigns]
    svg = charts.hbars("ch-campaigns", t["campaigns_chart"], labels,
                       {"hard": [r[2] for r in fig.campaigns],
                        "soft": [r[3] for r in fig.campaigns]},
                       {"hard": t["hard"], "soft": t["soft"]})
    rows = [[_e(c), p.n(n), p.n(h), p.n(s)] for c, n, h, s in fig.campaigns]
    table = p.table([t["campaign"], t["events"], t["hard"], t["soft"]], rows,
                    {1, 2, 3}, caption=t["table_note"], wrap=frozenset({0}))
    return (f'<section id="campaigns"><h2>{_e(t["campaigns_title"])}</h2>'
            f'{p.pair(svg, table)}</section>')
