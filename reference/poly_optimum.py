"""The least-squares optimum the poly programs' loss approaches: the best cubic against sin(x) on
their grid, in closed form (the convergence claims and the blog-poly erratum are judged against it)."""
from __future__ import annotations

import math

import numpy as np


def least_squares_cubic(points: int) -> tuple[float, np.ndarray]:
    """The cubic a + b x + c x^2 + d x^3 closest to sin(x) on x = linspace(-pi, pi, points): its sum
    of squared errors and its (a, b, c, d). (The NumPy programs' float64 grid; the torch programs
    draw it in float32, which moves the optimum by ~1e-7 relative.)"""
    x = np.linspace(-math.pi, math.pi, points)
    features = np.stack([np.ones_like(x), x, x**2, x**3], axis=1)
    coefficients, *_ = np.linalg.lstsq(features, np.sin(x), rcond=None)
    return float(np.sum((features @ coefficients - np.sin(x)) ** 2)), coefficients


def least_squares_optimum(points: int) -> float:
    """The smallest sum of squared errors any cubic reaches against sin(x) on the grid."""
    return least_squares_cubic(points)[0]
