"""One self-contained HTML page of a Matrix (`check --html`, `compare --html`).

The page has no scripts and no external resources (it is attached to tickets and CI runs): the
verdict, the matrix, what each status means, the environment of each column, and for every cell that
is not exact its verdict, the checks its row applied (and those it could not, with why), the first
step that is not bitwise equal, the first step outside the policy, the first differing op and its
picture (reference/report/plots.py) as inline SVG.

Machine-readable hooks, for tests and scripts: p#verdict[data-ok], table#matrix (one tr[data-row]
per row, one td[data-column][data-status] per cell; data-status is a status of
reference/judge/status.py or "baseline"), table#environment, and one
section.cell[data-row][data-column][data-status] per cell that differs, with dd.first-difference,
dd.first-bad-step, dd.first-op and an <svg> (g.band, line.first-bad, text.verdict-title).
"""
from __future__ import annotations

import html
from pathlib import Path

from ..files import atomic_write
from ..judge.matrix import Cell, Matrix
from ..judge.status import BASELINE, Status, legend
from . import plots
from .text import cell_details, cell_summary

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
td.status-exact, td.status-baseline { color: #555; }
td.status-close { background: #fff6d5; }
td.status-diverged { background: #f9d0d0; font-weight: bold; }
td.status-not-comparable { color: #999; }
.verdict-ok { color: #176117; } .verdict-bad { color: #a01010; }
section.cell { border-top: 1px solid #ccc; margin-top: 1em; padding-top: 0.5em; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; font-size: 13px; }
dt { font-weight: bold; } pre { font-size: 12px; white-space: pre-wrap; }
"""


def _anchor(row: str, column: str) -> str:
    return "cell-" + "".join(c if c.isalnum() else "-" for c in f"{row}--{column}")


def _step(value: int | None) -> str:
    return "none" if value is None else str(value)


def _status(cell: Cell) -> str:
    return BASELINE if cell.status is None else str(cell.status)


def render(matrix: Matrix) -> str:
    e = html.escape
    ok = matrix.exit_status() == 0
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{e(matrix.title)}</title><style>{STYLE}</style></head><body>",
           f"<h1>{e(matrix.title)}</h1>",
           f'<p id="verdict" class="{"verdict-ok" if ok else "verdict-bad"}" data-ok="{"true" if ok else "false"}">'
           f"<strong>{e(matrix.verdict_line())}</strong></p>",
           f'<p class="counts">{e(matrix.counts_line())}</p>']
    out += [f'<p class="note">{e(n)}</p>' for n in [*matrix.inputs, *matrix.notes]]
    out += _matrix_table(matrix) + _properties(matrix) + _environments(matrix) + _differing_cells(matrix)
    if matrix.problems or matrix.divergences:
        out.append("<h2>Problems</h2><ul>" + "".join(f"<li>{e(p)}</li>" for p in [*matrix.problems, *matrix.divergences])
                   + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _matrix_table(matrix: Matrix) -> list[str]:
    e = html.escape
    out = ["<h2>Matrix</h2>",
           '<table id="matrix"><thead><tr><th>run</th>'
           + "".join(f'<th data-column="{e(c.label)}">{e(c.label)}</th>' for c in matrix.columns)
           + "</tr></thead><tbody>"]
    for row in matrix.rows:
        out.append(f'<tr data-row="{e(row.label)}"><th>{e(row.label)}</th>')
        for column, cell in zip(matrix.columns, row.cells):
            text = e(cell.text)
            if cell.differs:
                text = f'<a href="#{_anchor(row.label, column.label)}">{text}</a>'
            title = f' title="{e(cell.reason)}"' if cell.reason else ""
            out.append(f'<td class="status-{_status(cell).replace(" ", "-")}" data-column="{e(column.label)}" '
                       f'data-status="{e(_status(cell))}"{title}>{text}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    out.append('<details open><summary>What the cells say</summary><pre class="legend">'
               + e("\n".join(line.strip() for line in legend())) + "</pre></details>")
    return out


def _properties(matrix: Matrix) -> list[str]:
    if not matrix.properties:
        return []
    e = html.escape
    return (["<h2>Properties</h2>",
             '<table class="extra" data-title="Properties"><thead><tr><th>property</th><th>device</th>'
             "<th>dtype</th><th>result</th><th>detail</th></tr></thead><tbody>"]
            + [f"<tr><td>{e(p.label)}</td><td>{e(p.device)}</td><td>{e(p.dtype)}</td>"
               f"<td>{'ok' if p.passed else 'FAILED'}</td><td>{e(p.message)}</td></tr>" for p in matrix.properties]
            + ["</tbody></table>"])


def _environments(matrix: Matrix) -> list[str]:
    e = html.escape
    keys = list(dict.fromkeys(k for c in matrix.columns for k in c.environment))
    out = ["<h2>Environment of each column</h2>",
           '<table id="environment"><thead><tr><th></th>'
           + "".join(f'<th data-column="{e(c.label)}">{e(c.label)}</th>' for c in matrix.columns)
           + "</tr></thead><tbody>"]
    for k in keys:
        out.append(f'<tr data-key="{e(k)}"><th>{e(k)}</th>'
                   + "".join(f'<td data-column="{e(c.label)}">{e(str(c.environment.get(k, "")))}</td>'
                             for c in matrix.columns) + "</tr>")
    out.append("</tbody></table>")
    if matrix.environment_differences:
        out.append('<pre class="environment-differences">'
                   + e("\n".join(matrix.environment_differences)) + "</pre>")
    return out


def _differing_cells(matrix: Matrix) -> list[str]:
    """A section per cell that differs: its steps, its op, the text report and the picture."""
    e = html.escape
    differing = [(row, column, cell) for row, column, cell in matrix.cells() if cell.differs]
    out = [f"<h2>Cells that differ ({len(differing)})</h2>"]
    if not differing:
        out.append("<p>Every judged cell is bitwise equal to its reference.</p>")
    for row, column, cell in differing:
        v = cell.verdict
        out.append(f'<section class="cell" id="{_anchor(row.label, column.label)}" data-row="{e(row.label)}" '
                   f'data-column="{e(column.label)}" data-status="{e(_status(cell))}">')
        out.append(f"<h3>{e(row.label)} [{e(column.label)}]: {e(cell.text)}</h3><dl>")
        out.append(f'<dt>first step not bitwise equal</dt><dd class="first-difference">'
                   f'{_step(None if v is None else v.first_difference)}</dd>')
        out.append(f'<dt>first step outside the policy</dt><dd class="first-bad-step">'
                   f'{_step(None if v is None else v.first_bad_step)}</dd>')
        op = cell.first_op
        out.append(f'<dt>first differing op</dt><dd class="first-op" data-known="{"false" if op is None else "true"}">'
                   f'{e(op) if op is not None else e(_no_op(cell))}</dd>')
        out.append("</dl>")
        out.append('<pre class="details">' + e("\n".join([cell_summary(row.label, column.label, cell),
                                                           *cell_details(row.label, column.label, cell, "  ")])) + "</pre>")
        fig = plots.figure(row.label, column.label, cell)
        if fig is not None:
            out.append(plots.svg(fig))
        out.append("</section>")
    return out


def _no_op(cell: Cell) -> str:
    located = [line for line in cell.located if line.startswith("op not located")]
    if located:
        return located[0]
    if cell.status is Status.CLOSE and cell.verdict is not None and cell.verdict.first_difference is None:
        return "not traced: the losses are bitwise equal (only the final parameters differ)"
    if cell.status is Status.CLOSE:
        return "not traced: within the policy, the op is named only where a cell diverges (compare names it for close cells)"
    return "not traced (no op trace for this run)"


def write(path: str | Path, matrix: Matrix) -> Path:
    """Write the page atomically (replacing an earlier report at `path`)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--html {path} is a directory; name a file, e.g. {path / 'report.html'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render(matrix)
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")), overwrite=True)
