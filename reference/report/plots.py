"""The picture of one judged cell, the same in the HTML (inline SVG) and as a PNG (matplotlib):

  title    the row, the column and the verdict (the cell's status and numbers)
  top      the loss over the steps, log scale: the reference drawn wide and light, the run thin on top
           of it (both stay visible where they agree), the float64 partner dashed
  bottom   the relative difference from the reference, log scale, with the band the policy allows
           at each step shaded (up to the row's horizon; after it the tail is judged by segment
           means, marked as such), a red line at the first step outside the policy and a grey one at
           the first step that is not bitwise equal; steps whose difference is exactly 0 are drawn
           as ticks on an "exact" strip below the axis, not at an invented floor.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..judge.matrix import Cell
from ..judge.status import Status

TINY = np.finfo(np.float64).tiny
COLORS = {"reference": "#9e9e9e", "run": "#1f77b4", "float64": "#2ca02c", "band": "#fde9a9",
          "bad": "#d62728", "first": "#555555", "exact": "#2ca02c"}
STATUS_COLORS = {Status.EXACT: "#176117", Status.CLOSE: "#8a6d00", Status.DIVERGED: "#a01010",
                 Status.NOT_COMPARABLE: "#555555"}


@dataclass
class Figure:
    title: str
    status: Status | None
    steps: int
    curves: list[tuple[str, str, np.ndarray]]  # (label, role: reference | run | float64, losses)
    relative: np.ndarray  # |run - reference| / |reference| per step (0 where bitwise equal)
    band: np.ndarray | None = None  # allowed relative difference per step (nan after the horizon)
    horizon: int | None = None
    first_bad: int | None = None
    first_difference: int | None = None
    notes: list[str] = field(default_factory=list)


def figure(row_label: str, column_label: str, cell: Cell) -> Figure | None:
    """The picture of a judged cell with curves, or None."""
    c = cell.curves
    if c is None:
        return None
    ref = np.asarray(c.reference, dtype=np.float64)
    now = np.asarray(c.now, dtype=np.float64)
    n = min(len(ref), len(now))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(now[:n] - ref[:n]) / np.maximum(np.abs(ref[:n]), TINY)
    rel = np.where((now[:n] == ref[:n]) | (np.isnan(now[:n]) & np.isnan(ref[:n])), 0.0, rel)
    curves = [(c.reference_label, "reference", ref), (c.now_label, "run", now)]
    if c.reference64 is not None:
        curves.append(("float64", "float64", np.asarray(c.reference64, dtype=np.float64)[: len(ref)]))
    band = horizon = None
    if c.rule is not None:
        band = np.full(n, np.nan)
        for b in c.rule.bands:
            lo, hi = b.start, min(b.stop, n)
            if lo < hi:
                band[lo:hi] = b.tolerance.rtol + b.tolerance.atol / np.maximum(np.abs(ref[lo:hi]), TINY)
        horizon = c.rule.horizon if c.rule.horizon < n else None
    v = cell.verdict
    title = f"{row_label} [{column_label}]: {cell.text}"
    notes = []
    if v is not None and v.failed:
        notes.append(v.failed[0].text)
    return Figure(title, cell.status, n, curves, rel, band, horizon,
                  None if v is None else v.first_bad_step, None if v is None else v.first_difference, notes)


# --- SVG --------------------------------------------------------------------------------------------

MAX_POINTS = 600  # per curve: enough to see a departure, small enough for a page of 40 plots


def _sample(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, MAX_POINTS)).round().astype(int)) if n else np.arange(0)


def _log_range(values: list[np.ndarray]) -> tuple[int, int]:
    finite = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in values] or [np.zeros(0)])
    if not finite.size:
        return -1, 0
    lo, hi = math.floor(math.log10(finite.min())), math.ceil(math.log10(finite.max()))
    return (lo, hi) if hi > lo else (lo, lo + 1)


class _Panel:
    def __init__(self, y0: float, height: float, left: float, width: float, steps: int, lo: int, hi: int):
        self.y0, self.height, self.left, self.width, self.lo, self.hi = y0, height, left, width, lo, hi
        self.x_scale = width / max(steps - 1, 1)

    def x(self, t: float) -> float:
        return self.left + t * self.x_scale

    def y(self, value: float) -> float:
        v = min(max(math.log10(value), self.lo), self.hi)
        return self.y0 + self.height - (v - self.lo) / (self.hi - self.lo) * self.height

    def frame(self, title: str) -> list[str]:
        out = [f'<rect x="{self.left}" y="{self.y0}" width="{self.width}" height="{self.height}" fill="none" stroke="#999"/>',
               f'<text x="{self.left}" y="{self.y0 - 4}" font-size="11">{html.escape(title)}</text>']
        step = max(1, (self.hi - self.lo) // 4)
        for d in range(self.lo, self.hi + 1, step):
            y = self.y(10.0 ** d)
            out.append(f'<text x="{self.left - 4}" y="{y + 4:.1f}" font-size="9" text-anchor="end">1e{d}</text>')
            out.append(f'<line x1="{self.left}" x2="{self.left + self.width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        return out

    def polyline(self, values: np.ndarray, color: str, width: float, name: str, role: str, dash: str = "") -> list[str]:
        segments, current = [], []
        for t in _sample(len(values)):
            v = values[t]
            if np.isfinite(v) and v > 0:
                current.append(f"{self.x(t):.1f},{self.y(float(v)):.1f}")
            elif current:
                segments.append(current)
                current = []
        if current:
            segments.append(current)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        return [f'<polyline class="curve" data-role="{role}" fill="none" stroke="{color}" stroke-width="{width}"'
                f'{dash_attr} stroke-linejoin="round" points="{" ".join(seg * (2 if len(seg) == 1 else 1))}">'
                f"<title>{html.escape(name)}</title></polyline>" for seg in segments]


def svg(fig: Figure) -> str:
    left, width, panel, gap, top = 56.0, 560.0, 130.0, 46.0, 34.0
    strip = 12.0  # the "exact" strip under the difference panel
    total_h = top + panel + gap + panel + strip + 46
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + left + 16:.0f}" height="{total_h:.0f}" '
           f'role="img" aria-label="{html.escape(fig.title)}" data-status="{"" if fig.status is None else fig.status}">',
           f'<text class="verdict-title" x="{left}" y="14" font-size="12" font-weight="bold" '
           f'fill="{STATUS_COLORS.get(fig.status, "#222")}">{html.escape(fig.title)}</text>']
    losses = _Panel(top, panel, left, width, fig.steps, *_log_range([c[2] for c in fig.curves]))
    out += losses.frame("loss (log scale)")
    style = {"reference": (COLORS["reference"], 4.0, ""), "run": (COLORS["run"], 1.2, ""),
             "float64": (COLORS["float64"], 1.0, "4,3")}
    for name, role, values in fig.curves:
        color, w, dash = style[role]
        out += losses.polyline(values, color, w, name, role, dash)
    rel_values = [fig.relative] + ([fig.band] if fig.band is not None else [])
    diff = _Panel(top + panel + gap, panel, left, width, fig.steps, *_log_range(rel_values))
    out += diff.frame("relative difference from the reference (log scale); shaded: what the policy allows")
    if fig.band is not None:
        known = np.flatnonzero(np.isfinite(fig.band))
        if known.size:
            pts = [f"{diff.x(t):.1f},{diff.y(float(fig.band[t])):.1f}" for t in known]
            pts += [f"{diff.x(known[-1]):.1f},{diff.y0 + diff.height:.1f}", f"{diff.x(known[0]):.1f},{diff.y0 + diff.height:.1f}"]
            out.append(f'<polygon class="band" fill="{COLORS["band"]}" stroke="#d9b650" stroke-width="0.6" '
                       f'points="{" ".join(pts)}"><title>allowed by the policy</title></polygon>')
    if fig.horizon is not None:
        x = diff.x(fig.horizon)
        out.append(f'<rect class="tail" x="{x:.1f}" y="{diff.y0}" width="{left + width - x:.1f}" height="{diff.height}" '
                   f'fill="#f2f2f2" opacity="0.6"><title>after step {fig.horizon}: judged by the tail '
                   f'(mean log loss of segments)</title></rect>')
        out.append(f'<text x="{x + 3:.1f}" y="{diff.y0 + 11}" font-size="9" fill="#666">tail: segment means</text>')
    out += diff.polyline(np.where(fig.relative > 0, fig.relative, np.nan), COLORS["run"], 1.2, "relative difference", "difference")
    strip_y = diff.y0 + diff.height + 3
    exact = np.flatnonzero(fig.relative == 0)
    out.append(f'<text x="{left - 4}" y="{strip_y + 8}" font-size="9" text-anchor="end">= 0</text>')
    if exact.size:
        out.append(f'<g class="exact-steps"><title>{exact.size} steps bitwise equal (difference exactly 0)</title>'
                   + "".join(f'<line x1="{diff.x(t):.1f}" x2="{diff.x(t):.1f}" y1="{strip_y}" y2="{strip_y + strip - 3}" '
                             f'stroke="{COLORS["exact"]}" stroke-width="1"/>' for t in _sample(fig.steps) if fig.relative[t] == 0)
                   + "</g>")
    for step, cls, color, text in ((fig.first_difference, "first-difference", COLORS["first"], "first step not bitwise equal"),
                                   (fig.first_bad, "first-bad", COLORS["bad"], "first step outside the policy")):
        if step is not None and 0 <= step < fig.steps:
            x = diff.x(step)
            out.append(f'<line class="{cls}" x1="{x:.1f}" x2="{x:.1f}" y1="{losses.y0}" y2="{strip_y + strip}" '
                       f'stroke="{color}" stroke-dasharray="3,3"><title>{text}: {step}</title></line>')
    base = strip_y + strip + 4
    for t in sorted({0, (fig.steps - 1) // 2, fig.steps - 1}):
        out.append(f'<text x="{diff.x(t):.1f}" y="{base + 8}" font-size="9" text-anchor="middle">{t}</text>')
    legend = [(fig.curves[0][0] + " (reference)", COLORS["reference"]), (fig.curves[1][0], COLORS["run"])]
    if len(fig.curves) > 2:
        legend.append(("float64 partner", COLORS["float64"]))
    legend += [("allowed", COLORS["band"]), ("first outside", COLORS["bad"])]
    x = left
    for name, color in legend:
        out.append(f'<rect x="{x:.0f}" y="{base + 16}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{x + 14:.0f}" y="{base + 25}" font-size="10">{html.escape(name)}</text>')
        x += 24 + 6.2 * len(name)
    out.append("</svg>")
    return "".join(out)


# --- PNG --------------------------------------------------------------------------------------------

def png(fig: Figure, path: Path) -> bool:
    """Write the picture as a PNG; False (nothing written) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    steps = np.arange(fig.steps)
    figure_, (top, bottom) = plt.subplots(2, 1, figsize=(8.5, 6.4), sharex=True)
    style = {"reference": dict(color=COLORS["reference"], linewidth=4.0, alpha=0.9, zorder=1),
             "run": dict(color=COLORS["run"], linewidth=1.2, zorder=3),
             "float64": dict(color=COLORS["float64"], linewidth=1.0, linestyle="--", zorder=2)}
    for name, role, values in fig.curves:
        y = np.where(values > 0, values, np.nan)[: fig.steps]
        top.semilogy(steps[: len(y)], y, label=name + (" (reference)" if role == "reference" else ""), **style[role])
    top.set_ylabel("loss (log)")
    top.legend(fontsize=8)
    if fig.band is not None and np.any(np.isfinite(fig.band)):
        known = np.isfinite(fig.band)
        floor = np.nanmin(fig.band[known]) / 100
        bottom.fill_between(steps, np.where(known, floor, np.nan), np.where(known, fig.band, np.nan),
                            color=COLORS["band"], label="allowed by the policy", zorder=0)
    if fig.horizon is not None:
        bottom.axvspan(fig.horizon, fig.steps - 1, color="#f2f2f2", zorder=0, label="tail: segment means")
    positive = fig.relative > 0
    bottom.semilogy(steps, np.where(positive, fig.relative, np.nan), color=COLORS["run"], linewidth=1.0,
                    label="relative difference")
    exact = np.flatnonzero(fig.relative == 0)
    if exact.size:
        # exact zeros on a strip under the axis (drawn in axes coordinates), not at an invented floor
        bottom.plot(exact, np.full(exact.size, -0.04), "|", color=COLORS["exact"], markersize=6, clip_on=False,
                    transform=bottom.get_xaxis_transform(), label=f"= 0 ({exact.size} steps)")
    for step, color, text in ((fig.first_difference, COLORS["first"], "first step not bitwise equal"),
                              (fig.first_bad, COLORS["bad"], "first step outside the policy")):
        if step is not None and 0 <= step < fig.steps:
            for ax in (top, bottom):
                ax.axvline(step, color=color, linestyle="--", linewidth=1)
            bottom.plot([], [], color=color, linestyle="--", label=f"{text}: {step}")
    bottom.set_ylabel("relative difference")
    bottom.set_xlabel("step")
    bottom.legend(fontsize=7, loc="best")
    figure_.suptitle(fig.title, fontsize=10, color=STATUS_COLORS.get(fig.status, "#222"))
    figure_.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure_.savefig(path, dpi=80)
    plt.close(figure_)
    return True


def file_stem(row_label: str, column_label: str) -> str:
    """'mlp.nn float32 seed 0' in column 'torch214' -> 'mlp.nn-float32-seed0--torch214'."""
    import re

    row = row_label.replace(" seed ", "-seed").replace(" ", "-")
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{row}--{column_label}")


def write_pngs(matrix, folder: Path) -> tuple[list[Path], bool]:
    """A PNG per cell that is not exact, under `folder`: (the files written, whether matplotlib is
    missing). OSError when the folder cannot be written."""
    written = []
    for row, column, cell in matrix.cells():
        if not cell.differs:
            continue
        fig = figure(row.label, column.label, cell)
        if fig is None:
            continue
        path = folder / f"{file_stem(row.label, column.label)}.png"
        if not png(fig, path):
            return written, True
        written.append(path)
    return written, False
