"""poly.nn -- the cubic as a linear layer over the features (x, x^2, x^3).

y is linear in (x, x^2, x^3), so nn.Linear(3, 1) is the whole model: its bias is a, its weights
are b, c, d. Flatten(0, 1) turns the (N, 1) output into the (N,) shape of y.
"""
import math

import torch


def make(points):
    # Input and output data: sin(x) on a grid over [-pi, pi]
    x = torch.linspace(-math.pi, math.pi, points)
    y = torch.sin(x)
    # Features: x.unsqueeze(-1) is (N, 1), p is (3,); broadcasting gives (N, 3)
    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)
    # Linear initialises its own weight and bias
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 1),
        torch.nn.Flatten(0, 1),
    )
    return dict(xx=xx, y=y, model=model)


def train(xx, y, model, lr, steps, record):
    # The loss function from nn: reduction="sum" makes it the sum of squared errors
    loss_fn = torch.nn.MSELoss(reduction="sum")
    for t in range(steps):
        # Forward pass: y = a + b x + c x^2 + d x^3
        y_pred = model(xx)

        # Sum of squared errors, kept a Tensor to backpropagate from
        loss = loss_fn(y_pred, y)
        record(t, loss)

        # Zero the gradients, then backprop to compute the gradients of every Parameter
        model.zero_grad()
        loss.backward()

        # Gradient descent
        with torch.no_grad():
            for param in model.parameters():
                param -= lr * param.grad
    return dict(model.named_parameters())
