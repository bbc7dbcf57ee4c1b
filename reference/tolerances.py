"""Every tolerance of the suite is an (rtol, atol) pair written once in specs/, with its evidence
beside it: the golden policy's rules in specs/golden_tolerances.toml (read by reference.judge), every
other pair in specs/tolerances.toml, read through this module: tolerance("gradients", "float32").

A value passes when |actual - expected| <= atol + rtol * |scale|, elementwise (torch.testing's rule;
scale is the expected value unless a test says which bound it scales, e.g. the sum of |terms|).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Iterator, Mapping

import numpy as np

from .catalogue import load_toml

TOLERANCES_FILE = "tolerances.toml"


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float

    @classmethod
    def of(cls, table: Mapping[str, Any]) -> "Tolerance":
        """From a TOML table { rtol = ..., atol = ... }: both must be given."""
        missing = [k for k in ("rtol", "atol") if k not in table]
        if missing:
            raise KeyError(f"tolerance {dict(table)} lacks {' and '.join(missing)}: give both rtol and atol")
        return cls(rtol=float(table["rtol"]), atol=float(table["atol"]))

    def __iter__(self) -> Iterator[float]:  # rtol, atol = tolerance(...)
        return iter((self.rtol, self.atol))

    @property
    def kwargs(self) -> dict[str, float]:
        """For np.testing.assert_allclose / torch.testing.assert_close: **tol.kwargs."""
        return {"rtol": self.rtol, "atol": self.atol}

    @property
    def exact(self) -> bool:
        return self.rtol == 0 and self.atol == 0

    def allowed(self, reference: np.ndarray) -> np.ndarray:
        return self.atol + self.rtol * np.abs(reference)

    def scaled(self, factor: float) -> "Tolerance":
        return Tolerance(self.rtol * factor, self.atol * factor)

    def __str__(self) -> str:
        return f"(rtol={self.rtol:g}, atol={self.atol:g})"


@cache
def _table() -> dict[str, Any]:
    return load_toml(TOLERANCES_FILE)


def tolerance(*path: str) -> Tolerance:
    """The (rtol, atol) pair at `path` in specs/tolerances.toml, e.g. tolerance("mnist", "test_loop")."""
    entry: Any = _table()
    for i, key in enumerate(path):
        if not isinstance(entry, Mapping) or key not in entry:
            where = ".".join(path[:i]) or "top level"
            choices = ", ".join(entry) if isinstance(entry, Mapping) else "none"
            raise KeyError(f"specs/{TOLERANCES_FILE} has no {key!r} under {where}. Valid choices: {choices}")
        entry = entry[key]
    return Tolerance.of(entry)
