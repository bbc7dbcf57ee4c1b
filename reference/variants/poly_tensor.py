"""poly.tensor -- the cubic fit with torch Tensors, gradients still by hand.

The NumPy program almost line for line: arrays become Tensors, which could live on a GPU.
"""
import math

import torch


def make(points):
    # Input and output data: sin(x) on a grid over [-pi, pi]
    x = torch.linspace(-math.pi, math.pi, points)
    y = torch.sin(x)
    # Randomly initialised coefficients (0-dimensional tensors)
    a = torch.randn(())
    b = torch.randn(())
    c = torch.randn(())
    d = torch.randn(())
    return dict(x=x, y=y, a=a, b=b, c=c, d=d)


def backward(x, y, y_pred):
    """Gradients of the squared-error loss with respect to a, b, c, d."""
    grad_y_pred = 2.0 * (y_pred - y)
    grad_a = grad_y_pred.sum()
    grad_b = (grad_y_pred * x).sum()
    grad_c = (grad_y_pred * x ** 2).sum()
    grad_d = (grad_y_pred * x ** 3).sum()
    return grad_a, grad_b, grad_c, grad_d


def train(x, y, a, b, c, d, lr, steps, record):
    for t in range(steps):
        # Forward pass: y = a + b x + c x^2 + d x^3
        y_pred = a + b * x + c * x ** 2 + d * x ** 3

        # Sum of squared errors, as a Python number
        loss = (y_pred - y).pow(2).sum().item()
        record(t, loss)

        # Backprop to compute the gradients of a, b, c, d with respect to the loss
        grad_a, grad_b, grad_c, grad_d = backward(x, y, y_pred)

        # Gradient descent
        a -= lr * grad_a
        b -= lr * grad_b
        c -= lr * grad_c
        d -= lr * grad_d
    return dict(a=a, b=b, c=c, d=d)
