"""The report's charts: matplotlib figures rendered server-side to inline SVG.

Why matplotlib: it is the long-maintained reference plotting library of Python (BSD-style
licence, yearly releases, wheels for every supported Python), it draws to SVG without a
display or a browser, and the SVG it writes needs no script, font or file from anywhere: the
page stays one self-contained HTML file that reads offline and as an email attachment, and
no JavaScript runs when it is opened.  Text is kept as SVG text (``svg.fonttype: none``), so
the labels stay small, selectable and searchable, and a chart weighs a few tens of kB
whatever the ledger's size (the data are aggregates: one bar per day or per domain).

Every function returns the ``<svg>`` element as ``str`` (no XML declaration); its element ids
are prefixed with ``name`` so that several charts can share one page.  The figures come with
their numbers: bars carry value labels where there is room, and the page puts the table of
the same numbers beside each chart.

Raises:
    ImportError: matplotlib is not installed (``pip install 'dsnparse[report]'``).
"""
from __future__ import annotations

import io
import re
from datetime import date, timedelta
from typing import Mapping, Optional, Sequence

#: Okabe & Ito's colour-blind-safe palette, one colour per fault (and per basis/kind).
COLOURS = {
    "recipient": "#D55E00", "mailbox": "#E69F00", "sender": "#0072B2",
    "message": "#CC79A7", "network": "#009E73", "unknown": "#999999",
    "hard": "#D55E00", "soft": "#E69F00", "delay": "#56B4E9", "complaint": "#CC79A7",
    "review": "#999999", "bounce": "#0072B2",
}
_DEFAULT = "#0072B2"
BAR_LIMIT = 60
"""More time buckets than this are drawn as step areas instead of bars."""
_RC = {
    "svg.fonttype": "none",           # text stays text: small, selectable, no embedded glyphs
    "svg.hashsalt": "dsnparse",       # the same data give the same file
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#888888",
    "axes.titlesize": 10,
    "legend.frameon": False,
    # labels come from mail (an address, a domain, a reason): "$…$" in them is text, not
    # matplotlib's math notation (which would rewrite it, or fail on an unbalanced "$")
    "text.parse_math": False,
}


def _figure(width: float, height: float):
    from matplotlib.figure import Figure   # no pyplot: no global state, no GUI backend

    return Figure(figsize=(width, height), dpi=72)


def _svg(fig, name: str, title: str) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    # the RDF metadata (matplotlib's name and URL, Dublin Core namespaces) is dead weight in
    # the page; the namespace declarations are implied for an <svg> inside HTML (HTML
    # Living Standard §13.2.6.5: foreign elements, xlink:href included)
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, count=1, flags=re.S)
    text = re.sub(r'\s+xmlns(?::xlink)?="[^"]*"', "", text[:500]) + text[500:]
    # path coordinates to 0.1 pt (matplotlib writes 6 decimals): a third of the size
    text = re.sub(r' d="([^"]*)"', lambda m: ' d="' + re.sub(
        r"(-?\d+)\.(\d)\d*", r"\1.\2", m.group(1)) + '"', text)
    # ids are unique per chart: prefix them and every reference to them
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{name}-{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{name}-{m.group(1)})", text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{name}-{m.group(1)}"', text)
    label = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)


def _styled(fn):
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(_RC):
            return fn(*args, **kwargs)
    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    return wrapper


def day_of(n: int) -> date:
    """The UTC calendar day of a day number (days since 1970-01-01)."""
    return date(1970, 1, 1) + timedelta(days=int(n))


@_styled
def stacked_days(name: str, title: str, days: Sequence[int],
                 series: Mapping[str, Sequence[int]], labels: Mapping[str, str],
                 unit: str = "day") -> str:
    """Counts over time, stacked by series (a fault, a basis), with a legend.

    Up to :data:`BAR_LIMIT` buckets are bars (labelled with their totals up to 31); more are
    drawn as stacked step areas, one path per series, so that the SVG stays small however long
    the period.

    Args:
        name: id prefix (``str``).
        title: chart title (``str``).
        days: the buckets' first days, in order (``int``, days since 1970-01-01).
        series: ``{key: counts}``, one count per bucket, stacked in this order.
        labels: ``{key: legend text}``.
        unit: ``"day"``, ``"week"``, ``"month"`` or ``"year"``: what one bucket spans.
    """
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    fig = _figure(9.0, 2.8)
    ax = fig.add_subplot()
    xs = [day_of(d) for d in days]
    bottom = [0] * len(days)
    span = {"day": 1, "week": 7, "month": 30, "year": 365}.get(unit, 1)
    bars = len(days) <= BAR_LIMIT
    for key, values in series.items():
        if not any(values):
            continue
        top = [b + v for b, v in zip(bottom, values)]
        colour = COLOURS.get(key, _DEFAULT)
        if bars:
            keep = [i for i, v in enumerate(values) if v]      # no empty bars in the file
            ax.bar([xs[i] for i in keep], [values[i] for i in keep], 0.8 * span,
                   bottom=[bottom[i] for i in keep], label=labels.get(key, key),
                   color=colour, linewidth=0)
        else:
            ax.fill_between(xs + [day_of(days[-1] + span)], bottom + bottom[-1:],
                            top + top[-1:], step="post", color=colour, linewidth=0,
                            label=labels.get(key, key))
        bottom = top
    if bars and len(days) <= 31:               # room for the totals on the bars
        for x, total in zip(xs, bottom):
            if total:
                ax.annotate(f"{total:,}", (x, total), ha="center", va="bottom",
                            fontsize=7, xytext=(0, 1), textcoords="offset points")
    loc = AutoDateLocator(minticks=3, maxticks=10)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(loc))
    ax.set_ylim(bottom=0)
    ax.set_title(title, loc="left")
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    if any(any(v) for v in series.values()):
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _svg(fig, name, title)


@_styled
def hbars(name: str, title: str, labels: Sequence[str],
          series: Mapping[str, Sequence[int]], legend: Optional[Mapping[str, str]] = None,
          width: float = 6.2) -> str:
    """Horizontal bars, one per label (first on top), stacked by series; each bar ends with
    its total.

    Args:
        name: id prefix (``str``).
        title: chart title (``str``).
        labels: the bars' labels (a domain, a reason, a campaign).
        series: ``{key: counts}`` (one count per label); one key draws plain bars.
        legend: ``{key: legend text}``; ``None`` draws no legend.
        width: of the figure, inches (``float``; scaled to the page's column).
    """
    n = len(labels)
    fig = _figure(width, 0.6 + 0.26 * max(n, 1))
    ax = fig.add_subplot()
    ys = list(range(n))
    left = [0] * n
    for key, values in series.items():
        if not any(values):
            continue
        ax.barh(ys, values, 0.7, left=left, color=COLOURS.get(key, _DEFAULT),
                label=(legend or {}).get(key, key), linewidth=0)
        left = [a + v for a, v in zip(left, values)]
    for y, total in zip(ys, left):
        ax.annotate(f"{total:,}", (total, y), va="center", ha="left", fontsize=8,
                    xytext=(3, 0), textcoords="offset points")
    ax.set_yticks(ys, [_short(s) for s in labels])
    ax.invert_yaxis()
    ax.set_xlim(0, max(left or [1]) * 1.15 or 1)
    ax.set_title(title, loc="left")
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", length=0)
    if legend and any(left):
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _svg(fig, name, title)


def _short(s: str, limit: int = 34) -> str:
    """A label cut in the middle (``…``) past ``limit`` characters; the table keeps it whole."""
    return s if len(s) <= limit else s[:limit // 2 - 1] + "…" + s[-(limit // 2):]
