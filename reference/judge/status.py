"""The one vocabulary of a judgement, used by every door (the golden fixture, check, compare, the
device checks) and every report (text, HTML, PNG, the pytest summary).

Note [one status, four words]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
A judged pair of trajectories has exactly one status:
  exact           every loss and every final parameter bitwise equal
  close           not bitwise equal, within the calibrated policy (every check that applied passed)
  diverged        beyond the policy: some check that applied failed (its first step and size given);
                  or, judged against an expectation set of the same environment, not bit for bit
  not comparable  no judgement could be made (a run missing, other steps, no calibrated row); never a pass
A check that cannot be applied (no float64 partner for the shadow, no parameter record) is listed
as not applied, with what would make it applicable; it never fails a verdict.
Exit statuses, every command: 0 something was judged and nothing diverged, 1 something diverged,
2 bad input or nothing judged.
"""
from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    EXACT = "exact"
    CLOSE = "close"
    DIVERGED = "diverged"
    NOT_COMPARABLE = "not comparable"

    def __str__(self) -> str:
        return self.value

    @property
    def judged(self) -> bool:
        """A judgement was made (exact, close or diverged)."""
        return self is not Status.NOT_COMPARABLE


MEANING = {
    Status.EXACT: "every loss and every final parameter bitwise equal",
    Status.CLOSE: "not bitwise equal, within the calibrated policy",
    Status.DIVERGED: "beyond the calibrated policy, or not bit for bit where an expectation set of this "
                     "environment judges (DIVERGED @step: the first step outside, then the largest relative loss "
                     "difference)",
    Status.NOT_COMPARABLE: "no judgement could be made (the reason is listed); never a pass",
}
# the cells that are not judgements
BASELINE = "baseline"
LEGEND_EXTRA = {
    "close (params)": "losses bitwise equal, final parameters not",
    BASELINE: "the column the others are judged against",
    "-": "no such run in this column (not comparable)",
}


def legend() -> list[str]:
    """The lines that explain every word a matrix cell can hold."""
    words = {str(s): MEANING[s] for s in Status}
    words.update(LEGEND_EXTRA)
    width = max(map(len, words))
    return [f"  {w:<{width}}  {m}" for w, m in words.items()]


def exit_status(statuses: list[Status], *, errors: bool = False) -> int:
    """0: something judged, nothing diverged; 1: something diverged; 2: errors or nothing judged."""
    if any(s is Status.DIVERGED for s in statuses):
        return 1
    if errors or not any(s.judged for s in statuses):
        return 2
    return 0
