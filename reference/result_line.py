"""The line the polynomial programs print after training: `Result: y = a + b x + c x^2 + d x^3`.

Each number is the final parameter's `.item()`, formatted as the programs' f-strings format it, so
the line is what the official program (seeded as reference.run seeds it) prints.
"""
from __future__ import annotations

from .harness.trajectory import Trajectory


def coefficients(trajectory: Trajectory) -> dict[str, float]:
    """The fitted coefficients by name: a, b, c, d (and e for poly.dynamic); poly.nn and poly.optim
    read theirs from Linear(3, 1): a = bias, b, c, d = the weights of x, x^2, x^3."""
    p = trajectory.params
    if "0.weight" in p:
        w = p["0.weight"].reshape(-1)
        return dict(a=p["0.bias"].reshape(()).item(), b=w[0].item(), c=w[1].item(), d=w[2].item())
    return {k: p[k].item() for k in sorted(p)}


def result_line(trajectory: Trajectory) -> str:
    if not trajectory.variant.startswith("poly."):
        raise ValueError(f"{trajectory.variant} has no Result line. Valid choices: the poly.* variants")
    k = coefficients(trajectory)
    if trajectory.variant == "poly.custom_function":  # y = a + b P3(c + d x)
        return f"Result: y = {k['a']} + {k['b']} * P3({k['c']} + {k['d']} x)"
    line = f"Result: y = {k['a']} + {k['b']} x + {k['c']} x^2 + {k['d']} x^3"
    if "e" in k:  # poly.dynamic: e multiplies x^4 and, on some steps, x^5
        line += f" + {k['e']} x^4 ? + {k['e']} x^5 ?"
    return line
