"""One self-contained HTML page for a matrix of verdicts (`compare --html`, `check --html`).

The page has no scripts and no external resources (it is attached to tickets and CI runs): the
matrix, the environment of each column, and for every cell that differs its verdict, the first
step that is not bitwise equal, the first step outside the policy, the first differing op (when an
op trace is known; otherwise the slot says so) and its loss curves as inline SVG.

Machine-readable hooks, for tests and scripts: table#matrix (one tr[data-row] per row, one
td[data-column][data-status] per cell), table#environment, and one section.cell[data-row][data-column]
per differing cell with dd.first-difference, dd.first-bad-step, dd.first-op and an <svg>.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .files import atomic_write

# cell statuses drawn as differing (their curves and details are shown)
DIFFERING = ("close", "failed")


@dataclass
class Cell:
    status: str  # baseline | exact | close | failed | missing | skipped | error | ...
    text: str  # what the matrix shows
    details: list[str] = field(default_factory=list)  # the verdict's summary and reasons
    curves: Mapping[str, Sequence[float]] | None = None  # name -> losses; the reference among them
    reference: str | None = None  # the curve the others are measured against
    first_difference: int | None = None  # the first step whose loss is not bitwise the reference's
    first_bad_step: int | None = None  # the first step outside the policy
    first_op: str | None = None  # the first differing op, where an op trace found it


@dataclass
class Column:
    label: str
    environment: Mapping[str, str]


@dataclass
class Page:
    title: str
    columns: list[Column]
    rows: list[tuple[str, list[Cell]]]  # (row label, one cell per column)
    verdict: str  # the closing line: nothing differs / what differs
    ok: bool
    notes: list[str] = field(default_factory=list)  # lines shown under the title
    extra_tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)  # (title, header, rows)


def first_difference(now: Sequence[float], base: Sequence[float]) -> int | None:
    """The first step whose loss is not bitwise equal (NaN equals NaN), or None."""
    a, b = np.asarray(now, dtype=np.float64), np.asarray(base, dtype=np.float64)
    n = min(len(a), len(b))
    differs = np.flatnonzero(~((a[:n] == b[:n]) | (np.isnan(a[:n]) & np.isnan(b[:n]))))
    return int(differs[0]) if differs.size else (n if len(a) != len(b) else None)


# --- SVG ---------------------------------------------------------------------------------------

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
MAX_POINTS = 600  # per curve: enough to see a departure, small enough for a page of 40 plots


def _sample(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).round().astype(int)) if n else np.arange(0)


def _log_panel(series: Mapping[str, np.ndarray], *, y0: float, height: float, width: float, left: float,
               n_steps: int, title: str, colors: Mapping[str, str], marker: int | None) -> list[str]:
    """One panel: log10 of each series (non-positive and non-finite points left out) over the steps."""
    logs = {}
    for name, y in series.items():
        with np.errstate(divide="ignore", invalid="ignore"):
            logs[name] = np.where(np.isfinite(y) & (y > 0), np.log10(np.where(y > 0, y, 1.0)), np.nan)
    finite = np.concatenate([v[np.isfinite(v)] for v in logs.values()] or [np.zeros(0)])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    lo, hi = math.floor(lo), math.ceil(hi)
    if hi <= lo:
        hi = lo + 1
    x_scale = width / max(n_steps - 1, 1)

    def xy(t: float, v: float) -> str:
        return f"{left + t * x_scale:.1f},{y0 + height - (v - lo) / (hi - lo) * height:.1f}"

    out = [f'<rect x="{left}" y="{y0}" width="{width}" height="{height}" fill="none" stroke="#999"/>',
           f'<text x="{left}" y="{y0 - 4}" font-size="11">{html.escape(title)}</text>']
    step = max(1, (hi - lo) // 4)
    for d in range(lo, hi + 1, step):
        y = y0 + height - (d - lo) / (hi - lo) * height
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="9" text-anchor="end">1e{d}</text>')
        out.append(f'<line x1="{left}" x2="{left + width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
    for name, v in logs.items():
        idx = _sample(len(v))
        segment: list[str] = []
        segments = []
        for t in idx:
            if np.isfinite(v[t]):
                segment.append(xy(t, float(v[t])))
            elif segment:
                segments.append(segment)
                segment = []
        if segment:
            segments.append(segment)
        for seg in segments:
            if len(seg) == 1:
                seg = seg * 2
            out.append(f'<polyline fill="none" stroke="{colors[name]}" stroke-width="1.2" '
                       f'points="{" ".join(seg)}"><title>{html.escape(name)}</title></polyline>')
    if marker is not None and 0 <= marker < n_steps:
        x = left + marker * x_scale
        out.append(f'<line class="first-bad" x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y0 + height}" '
                   f'stroke="#d62728" stroke-dasharray="3,3"/>')
    return out


def curves_svg(curves: Mapping[str, Sequence[float]], reference: str, *, marker: int | None = None) -> str:
    """Loss curves (log scale) and each curve's relative difference from `reference`, as one SVG."""
    width, left, panel, gap = 560.0, 48.0, 130.0, 34.0
    arrays = {name: np.asarray(v, dtype=np.float64) for name, v in curves.items()}
    ref = arrays[reference]
    n = max(len(v) for v in arrays.values())
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(arrays)}
    rel = {}
    for name, y in arrays.items():
        if name == reference:
            continue
        m = min(len(y), len(ref))
        with np.errstate(divide="ignore", invalid="ignore"):
            rel[name] = np.abs(y[:m] - ref[:m]) / np.maximum(np.abs(ref[:m]), np.finfo(np.float64).tiny)
    total_h = 20 + panel + gap + panel + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + left + 12:.0f}" height="{total_h:.0f}" '
             f'role="img" aria-label="loss curves">']
    parts += _log_panel(arrays, y0=20, height=panel, width=width, left=left, n_steps=n,
                        title="loss (log scale)", colors=colors, marker=marker)
    parts += _log_panel(rel, y0=20 + panel + gap, height=panel, width=width, left=left, n_steps=n,
                        title=f"relative difference from {reference} (log scale; exact zeros left out)",
                        colors=colors, marker=marker)
    base = 20 + 2 * panel + gap
    for t in sorted({0, (n - 1) // 2, n - 1}):
        x = left + t * width / max(n - 1, 1)
        parts.append(f'<text x="{x:.1f}" y="{base + 12}" font-size="9" text-anchor="middle">{t}</text>')
    legend_x = left
    for name, color in colors.items():
        parts.append(f'<rect x="{legend_x:.0f}" y="{base + 20}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{legend_x + 14:.0f}" y="{base + 29}" font-size="10">{html.escape(name)}</text>')
        legend_x += 24 + 6.5 * len(name)
    parts.append("</svg>")
    return "".join(parts)


# --- the page ----------------------------------------------------------------------------------

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
td.status-exact, td.status-baseline { color: #555; }
td.status-close { background: #fff6d5; }
td.status-failed, td.status-error { background: #f9d0d0; font-weight: bold; }
td.status-skipped, td.status-missing { color: #999; }
.verdict-ok { color: #176117; } .verdict-bad { color: #a01010; }
section.cell { border-top: 1px solid #ccc; margin-top: 1em; padding-top: 0.5em; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; font-size: 13px; }
dt { font-weight: bold; } pre { font-size: 12px; white-space: pre-wrap; }
"""


def _anchor(row: str, column: str) -> str:
    return "cell-" + "".join(c if c.isalnum() else "-" for c in f"{row}--{column}")


def _step(value: int | None) -> str:
    return "none" if value is None else str(value)


def render(page: Page) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{e(page.title)}</title><style>{STYLE}</style></head><body>",
           f"<h1>{e(page.title)}</h1>"]
    out.append(f'<p id="verdict" class="{"verdict-ok" if page.ok else "verdict-bad"}" '
               f'data-ok="{"true" if page.ok else "false"}"><strong>{e(page.verdict)}</strong></p>')
    out += [f'<p class="note">{e(n)}</p>' for n in page.notes]

    out.append("<h2>Matrix</h2>")
    out.append('<table id="matrix"><thead><tr><th>run</th>'
               + "".join(f'<th data-column="{e(c.label)}">{e(c.label)}</th>' for c in page.columns)
               + "</tr></thead><tbody>")
    for label, cells in page.rows:
        out.append(f'<tr data-row="{e(label)}"><th>{e(label)}</th>')
        for column, cell in zip(page.columns, cells):
            text = e(cell.text)
            if cell.status in DIFFERING:
                text = f'<a href="#{_anchor(label, column.label)}">{text}</a>'
            out.append(f'<td class="status-{e(cell.status.replace(" ", "-"))}" data-column="{e(column.label)}" '
                       f'data-status="{e(cell.status)}">{text}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")

    out.append("<h2>Environment of each column</h2>")
    keys = list(dict.fromkeys(k for c in page.columns for k in c.environment))
    out.append('<table id="environment"><thead><tr><th></th>'
               + "".join(f'<th data-column="{e(c.label)}">{e(c.label)}</th>' for c in page.columns)
               + "</tr></thead><tbody>")
    for k in keys:
        out.append(f'<tr data-key="{e(k)}"><th>{e(k)}</th>'
                   + "".join(f'<td data-column="{e(c.label)}">{e(str(c.environment.get(k, "")))}</td>'
                             for c in page.columns) + "</tr>")
    out.append("</tbody></table>")

    for title, header, rows in page.extra_tables:
        out.append(f"<h2>{e(title)}</h2>")
        out.append(f'<table class="extra" data-title="{e(title)}"><thead><tr>'
                   + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>")
        out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
        out.append("</tbody></table>")

    differing = [(label, column, cell) for label, cells in page.rows
                 for column, cell in zip(page.columns, cells) if cell.status in DIFFERING]
    out.append(f"<h2>Cells that differ ({len(differing)})</h2>")
    if not differing:
        out.append("<p>Every cell is bitwise equal to its reference.</p>")
    for label, column, cell in differing:
        out.append(f'<section class="cell" id="{_anchor(label, column.label)}" data-row="{e(label)}" '
                   f'data-column="{e(column.label)}" data-status="{e(cell.status)}">')
        out.append(f"<h3>{e(label)} [{e(column.label)}]: {e(cell.text)}</h3><dl>")
        out.append(f'<dt>first step not bitwise equal</dt><dd class="first-difference">{_step(cell.first_difference)}</dd>')
        out.append(f'<dt>first step outside the policy</dt><dd class="first-bad-step">{_step(cell.first_bad_step)}</dd>')
        op = cell.first_op
        out.append(f'<dt>first differing op</dt><dd class="first-op" data-known="{"false" if op is None else "true"}">'
                   f'{e(op) if op is not None else "not traced (no op trace for this run)"}</dd>')
        out.append("</dl>")
        if cell.details:
            out.append('<pre class="details">' + e("\n".join(cell.details)) + "</pre>")
        if cell.curves and cell.reference in cell.curves:
            out.append(curves_svg(cell.curves, cell.reference, marker=cell.first_bad_step))
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write(path: str | Path, page: Page) -> Path:
    """Write the page atomically (replacing an earlier report at `path`)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--html {path} is a directory; name a file, e.g. {path / 'report.html'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render(page)
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), overwrite=True)
