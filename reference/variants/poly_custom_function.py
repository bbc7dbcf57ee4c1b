"""poly.custom_function -- a custom autograd Function: the Legendre polynomial P3.

The model is y = a + b P3(c + d x) with P3(z) = (5 z^3 - 3 z) / 2; we write P3's forward and its
derivative P3'(z) = 1.5 (5 z^2 - 1) ourselves. The start is fixed, not random: P3 needs a start
near the answer to converge.
"""
import math

import torch


class LegendrePolynomial3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        # Keep the input for the backward pass
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        # Chain rule: incoming gradient times P3'(input)
        return grad_output * 1.5 * (5 * input ** 2 - 1)


def make(points, init_a, init_b, init_c, init_d):
    # Input and output data: sin(x) on a grid over [-pi, pi]
    x = torch.linspace(-math.pi, math.pi, points)
    y = torch.sin(x)
    # Fixed starting coefficients (0-dimensional tensors): P3 converges only from near the answer
    # requires_grad=True asks autograd to track them
    a = torch.full((), init_a, requires_grad=True)
    b = torch.full((), init_b, requires_grad=True)
    c = torch.full((), init_c, requires_grad=True)
    d = torch.full((), init_d, requires_grad=True)
    return dict(x=x, y=y, a=a, b=b, c=c, d=d)


def train(x, y, a, b, c, d, lr, steps, record):
    for t in range(steps):
        # Function.apply runs our Function; alias it as P3
        P3 = LegendrePolynomial3.apply

        # Forward pass: y = a + b P3(c + d x)
        y_pred = a + b * P3(c + d * x)

        # Sum of squared errors, kept a Tensor to backpropagate from
        loss = (y_pred - y).pow(2).sum()
        record(t, loss)

        # Backprop to compute the gradients of a, b, c, d with respect to the loss
        # (autograd calls LegendrePolynomial3.backward on its way back)
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
