"""poly.optim -- an optimizer from torch.optim (RMSprop) updates the cubic's coefficients.

(blog-poly prints lr 1e-6 here, where the official tutorial uses 1e-3: run it with lr=1e-6.)
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
    # RMSprop adapts the step size per parameter
    optimizer = torch.optim.RMSprop(model.parameters(), lr=lr)
    for t in range(steps):
        # Forward pass: y = a + b x + c x^2 + d x^3
        y_pred = model(xx)

        # Sum of squared errors, kept a Tensor to backpropagate from
        loss = loss_fn(y_pred, y)
        record(t, loss)

        # Zero the gradients, then backprop to compute the gradients of every Parameter
        optimizer.zero_grad()
        loss.backward()

        # Update: the optimizer takes its step on every Parameter
        optimizer.step()
    return dict(model.named_parameters())
