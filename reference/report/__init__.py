"""Reports of a Matrix (reference/judge/matrix.py), and nothing else:

    text.py    what `check` and `compare` print, and the checkpoint tables
    html.py    one self-contained page (inline SVG, no scripts)
    plots.py   the picture of one judged cell: inline SVG and PNG, the same elements
    table.py   the one table printer
"""
