"""Reading the HTML report (reference/report/html.py) the way a script would: html.parser, no eyes."""
from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """What the tests read from a report: matrix cells, environment rows, differing-cell sections."""

    def __init__(self, text: str):
        super().__init__()
        self.cells: dict[tuple[str, str], str] = {}  # (row, column) -> data-status
        self.environment: dict[str, dict[str, str]] = {}  # key -> column -> text
        self.sections: dict[tuple[str, str], dict[str, str]] = {}  # (row, column) -> dd class -> text
        self.svgs: set[tuple[str, str]] = set()
        # (row, column) -> the SVG's drawn elements: class (or curve role) -> their <title> / text
        self.drawn: dict[tuple[str, str], dict[str, list[str]]] = {}
        self.external: list[str] = []
        self.verdict_ok: str | None = None
        self._row = self._env_key = self._section = self._dd = self._env_col = self._element = None
        self._text: list[str] = []
        self._in_matrix = self._in_env = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for name in ("src", "href"):
            if name in a and not a[name].startswith("#"):
                self.external.append(a[name])
        if tag in ("link", "script", "img", "iframe"):
            self.external.append(tag)
        if tag == "table":
            self._in_matrix, self._in_env = a.get("id") == "matrix", a.get("id") == "environment"
        elif tag == "tr" and self._in_matrix:
            self._row = a.get("data-row")
        elif tag == "tr" and self._in_env:
            self._env_key = a.get("data-key")
        elif tag == "td" and self._in_matrix and self._row is not None:
            self.cells[self._row, a["data-column"]] = a["data-status"]
        elif tag == "td" and self._in_env and self._env_key is not None:
            self._env_col, self._text = a["data-column"], []
        elif tag == "section" and "cell" in a.get("class", ""):
            self._section = (a["data-row"], a["data-column"])
            self.sections[self._section] = {}
        elif tag == "dd" and self._section is not None:
            self._dd, self._text = a.get("class"), []
        elif tag == "svg" and self._section is not None:
            self.svgs.add(self._section)
            self.drawn.setdefault(self._section, {})
        elif self._section in self.drawn and (a.get("class") or a.get("data-role")):
            name = a.get("data-role") if a.get("class") == "curve" else a.get("class")
            self.drawn[self._section].setdefault(name, [])
            self._element, self._text = name, []
        elif tag == "p" and a.get("id") == "verdict":
            self.verdict_ok = a.get("data-ok")

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_matrix = self._in_env = False
        elif tag == "td" and self._env_col is not None:
            self.environment.setdefault(self._env_key, {})[self._env_col] = "".join(self._text)
            self._env_col = None
        elif tag == "dd" and self._dd is not None:
            self.sections[self._section][self._dd] = "".join(self._text)
            self._dd = None
        elif tag == "section":
            self._section = None
        elif self._element is not None and tag in ("title", "text"):
            self.drawn[self._section][self._element].append("".join(self._text).strip())
            self._element = None

    def handle_data(self, data):
        self._text.append(data)
