"""poly.optim -- an optimizer from torch.optim (RMSprop) updates the cubic's coefficients.

(blog-poly prints lr 1e-6 here, where the official tutorial uses 1e-3: run it with lr=1e-6.)
"""
import math

import torch


def make(points):
    # Input and output data: sin(x) on a grid over [-pi, pi]
    x = torch.linspace(-math.pi, math.pi, points)
    y = torch.sin(x)
    # Features (x, x^2, x^3) and the linear model over them
    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 1),
        torch.nn.Flatten(0, 1),
    )
    return dict(xx=xx, y=y, model=model)


def train(xx, y, model, lr, steps, record):
    loss_fn = torch.nn.MSELoss(reduction="sum")
    # RMSprop adapts the step size per parameter
    optimizer = torch.optim.RMSprop(model.parameters(), lr=lr)
    for t in range(steps):
        y_pred = model(xx)

        loss = loss_fn(y_pred, y)
        record(t, loss)

        # Zero the gradients, backprop, and let the optimizer update the weights
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return dict(model.named_parameters())
