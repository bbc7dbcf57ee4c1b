"""poly.autograd -- autograd computes the gradients of the cubic fit.

Coefficients created with requires_grad=True are tracked; loss.backward() fills their .grad.
(blog-poly runs this program in float64 from float64 draws, `dtype = float`: dtype="float64",
draw_dtype="float64". The default draws in float32, as the official program does.)
"""
import math

import torch


def make(points, draw_dtype):
    dtype = getattr(torch, draw_dtype)  # float64 draws give other numbers, not float32's widened
    # Input and output data: sin(x) on a grid over [-pi, pi]
    x = torch.linspace(-math.pi, math.pi, points, dtype=dtype)
    y = torch.sin(x)
    # Randomly initialised coefficients (0-dimensional tensors)
    # requires_grad=True asks autograd to track them
    a = torch.randn((), dtype=dtype, requires_grad=True)
    b = torch.randn((), dtype=dtype, requires_grad=True)
    c = torch.randn((), dtype=dtype, requires_grad=True)
    d = torch.randn((), dtype=dtype, requires_grad=True)
    return dict(x=x, y=y, a=a, b=b, c=c, d=d)


def train(x, y, a, b, c, d, lr, steps, record):
    for t in range(steps):
        # Forward pass: y = a + b x + c x^2 + d x^3
        y_pred = a + b * x + c * x ** 2 + d * x ** 3

        # Sum of squared errors, kept a Tensor to backpropagate from
        loss = (y_pred - y).pow(2).sum()
        record(t, loss)

        # Backprop to compute the gradients of a, b, c, d with respect to the loss
        loss.backward()

        # Gradient descent
        # outside the graph, then drop the gradients for the next step
        with torch.no_grad():
            a -= lr * a.grad
            b -= lr * b.grad
            c -= lr * c.grad
            d -= lr * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    return dict(a=a, b=b, c=c, d=d)
