"""Which release changed it: a binary search over ordered environments (torch releases, or interpreters
the user has), per variant and dtype, for the last one that computes the same bits as the first and
the first that does not; then the boundary verified (both sides run, none between them skipped), the
op where they part named (traced on both sides), the change judged by the calibrated policy, and every
other environment key that changed across the boundary named (a release may force another NumPy).

Monotonic change is an assumption: a tested environment that contradicts it is said so; `exhaustive`
runs every one. The environments are anything with `label`, `record(targets)` and `locate(...)`
(reference/bisect/environments.py makes real ones; the tests hand in stubs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from ..harness.state import first_state_difference
from ..harness.trajectory import Trajectory
from ..judge.checks import first_difference
from ..judge.status import Status
from ..judge.verdict import judge


class Unavailable(Exception):
    """An environment that cannot be made here (a release with no build for this Python or platform)."""


class Environment(Protocol):
    label: str  # "2.14.0", or the interpreter's path

    def record(self, targets: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Trajectory]:
        """Run each (variant, dtype) from seed 0 at one thread; raise Unavailable if it cannot run."""
        ...

    def locate(self, variant: str, dtype: str, step: int, against: dict | None) -> tuple[dict, str | None]:
        """The op trace of `step` (and, against a baseline trace, the line naming the first differing op)."""
        ...


@dataclass
class Result:
    variant: str
    dtype: str
    last_same: str | None
    first_changed: str | None  # None: nothing changed in the range
    first_op: str | None = None
    beyond_policy: bool | None = None
    env_changed: dict[str, list[str]] = field(default_factory=dict)
    verified: bool = False  # the boundary is exact: no release between its two sides was skipped
    notes: list[str] = field(default_factory=list)  # non-monotonic ranges, skipped environments

    def to_json(self) -> dict[str, Any]:
        return {"variant": self.variant, "dtype": self.dtype, "last_same": self.last_same,
                "first_changed": self.first_changed, "first_op": self.first_op, "beyond_policy": self.beyond_policy,
                "env_changed": self.env_changed, "verified": self.verified, "notes": self.notes}


def same_bits(a: Trajectory, b: Trajectory) -> bool:
    if first_difference(a.losses, b.losses) is not None or a.steps != b.steps:
        return False
    if a.state_digests and b.state_digests:
        return a.state_digests == b.state_digests
    return a.params_record() == b.params_record()


def parting_step(a: Trajectory, b: Trajectory) -> int:
    """The step to trace where `b` parts from `a` (See Note [the state parts before the loss])."""
    k = first_difference(b.losses, a.losses)
    s = first_state_difference(a.state_digests, b.state_digests)
    candidates = [x for x in (k, None if s is None else max(s - 1, 0)) if x is not None]
    return min(candidates) if candidates else 0


# torch's own: its version and the libraries it bundles (a release brings its own MKL and oneDNN)
_OWN_KEYS = {"torch", "torch_mkl", "torch_onednn", "torch_blas", "mkl_cpu_dispatch", "mkl_intel_cpu"}


def moved(a: Trajectory, b: Trajectory) -> dict[str, list[str]]:
    """Every environment key other than torch's version that differs across the boundary:
    {key: [before, after]} (a dependency the release forced, another BLAS, another Python)."""
    out = {}
    ra, rb = dict(a.environment or {}), dict(b.environment or {})
    ra.setdefault("python", a.python_version)
    rb.setdefault("python", b.python_version)
    ra.setdefault("numpy", a.numpy_version)
    rb.setdefault("numpy", b.numpy_version)
    for key in sorted(set(ra) | set(rb)):
        if key in _OWN_KEYS or ra.get(key) == rb.get(key):
            continue
        out[key] = [_text(ra.get(key)), _text(rb.get(key))]
    return out


def _text(value: Any) -> str:
    return "unset" if value is None else (", ".join(map(str, value)) if isinstance(value, list) else str(value))


class Search:
    """The bisection, sharing each environment's runs between every target."""

    def __init__(self, environments: Sequence[Environment], targets: Sequence[tuple[str, str]], *,
                 progress: Callable[[str], None] = lambda line: None, exhaustive: bool = False):
        if len(environments) < 2:
            raise ValueError("bisect needs at least two environments: the good one and the bad one")
        self.envs = list(environments)
        self.targets = list(targets)
        self.progress = progress
        self.exhaustive = exhaustive
        self._runs: dict[int, dict[tuple[str, str], Trajectory] | None] = {}  # env index -> runs (None: unavailable)
        self.skipped: dict[str, str] = {}  # env label -> why
        self.tested: list[str] = []  # in the order they were run

    def runs(self, i: int) -> dict[tuple[str, str], Trajectory] | None:
        if i not in self._runs:
            env = self.envs[i]
            self.progress(f"bisect: running {len(self.targets)} runs in {env.label}")
            try:
                self._runs[i] = env.record(self.targets)
                self.tested.append(env.label)
            except Unavailable as exc:
                self._runs[i] = None
                self.skipped[env.label] = str(exc)
                self.progress(f"bisect: {env.label} skipped: {exc}")
        return self._runs[i]

    def _available(self, lo: int, hi: int) -> list[int]:
        """The environments strictly between lo and hi not yet found unavailable."""
        return [i for i in range(lo + 1, hi) if self._runs.get(i, {}) is not None]

    def _boundary(self, target: tuple[str, str], good: Trajectory) -> tuple[int, int]:
        """(last index with good's bits, first index without), binary search over the available ones."""
        lo, hi = 0, len(self.envs) - 1
        while True:
            between = self._available(lo, hi)
            if not between:
                return lo, hi
            mid = between[len(between) // 2]
            runs = self.runs(mid)
            if runs is None:
                continue  # unavailable: the search goes on over its neighbours
            if same_bits(good, runs[target]):
                lo = mid
            else:
                hi = mid

    def run(self) -> list[Result]:
        first, last = self.runs(0), self.runs(len(self.envs) - 1)
        for end, runs in ((self.envs[0], first), (self.envs[-1], last)):
            if runs is None:
                raise Unavailable(f"{end.label} cannot be run here ({self.skipped[end.label]}): it is an end of the range")
        if self.exhaustive:
            for i in range(1, len(self.envs) - 1):
                self.runs(i)
        results = []
        for target in self.targets:
            good = first[target]
            if same_bits(good, last[target]) and not self.exhaustive:
                results.append(Result(*target, last_same=self.envs[-1].label, first_changed=None, verified=True))
                continue
            lo, hi = self._boundary(target, good)
            results.append(self._result(target, good, lo, hi))
        return results

    def _result(self, target: tuple[str, str], good: Trajectory, lo: int, hi: int) -> Result:
        before, after = self._runs[lo][target], self._runs[hi][target]
        if same_bits(good, after):  # exhaustive over a range whose ends agree
            result = Result(*target, last_same=self.envs[hi].label, first_changed=None, verified=True)
        else:
            result = Result(*target, last_same=self.envs[lo].label, first_changed=self.envs[hi].label,
                            verified=hi == lo + 1)  # else the change is somewhere in (lo, hi]
            verdict = judge(target[0], target[1], after.losses, before.losses, now_params=after.params_record(),
                            reference_params=before.params_record())
            result.beyond_policy = verdict.status is Status.DIVERGED
            result.env_changed = moved(before, after)
            result.first_op = self._op(target, before, after, lo, hi)
        skipped = [self.envs[i].label for i in range(lo + 1, hi) if self._runs.get(i, {}) is None]
        if skipped:
            result.notes.append(f"between them, {', '.join(skipped)} could not be run (skipped)")
        for i, runs in sorted(self._runs.items()):  # a tested environment that contradicts monotonic change
            if runs is None or i in (lo, hi):
                continue
            same = same_bits(good, runs[target])
            if (i < lo and not same) or (i > hi and same):
                result.notes.append(f"not monotonic: {self.envs[i].label} computes "
                                    f"{'other bits than' if not same else 'the same bits as'} {self.envs[0].label}, "
                                    f"against the boundary; --exhaustive runs every release in the range")
        return result

    def _op(self, target: tuple[str, str], before: Trajectory, after: Trajectory, lo: int, hi: int) -> str:
        step = parting_step(before, after)
        try:
            baseline, _ = self.envs[lo].locate(*target, step, None)
            _, line = self.envs[hi].locate(*target, step, baseline)
        except Unavailable as exc:
            return f"op not located: {exc}"
        return line or f"op not located at step {step}"

