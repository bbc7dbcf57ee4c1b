"""poly.module -- a custom nn.Module, Polynomial3, with four scalar Parameters.

Parameters assigned as attributes are registered with the Module, so model.parameters() hands
all four to the optimizer.
"""
import math

import torch


class Polynomial3(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.randn(()))
        self.b = torch.nn.Parameter(torch.randn(()))
        self.c = torch.nn.Parameter(torch.randn(()))
        self.d = torch.nn.Parameter(torch.randn(()))

    def forward(self, x):
        return self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3


def make(points):
    # Input and output data: sin(x) on a grid over [-pi, pi]
    x = torch.linspace(-math.pi, math.pi, points)
    y = torch.sin(x)
    model = Polynomial3()
    return dict(x=x, y=y, model=model)


def train(x, y, model, lr, steps, record):
    # The loss function from nn: reduction="sum" makes it the sum of squared errors
    criterion = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for t in range(steps):
        # Forward pass: y = a + b x + c x^2 + d x^3
        y_pred = model(x)

        # Sum of squared errors, kept a Tensor to backpropagate from
        loss = criterion(y_pred, y)
        record(t, loss)

        # Zero the gradients, then backprop to compute the gradients of every Parameter
        optimizer.zero_grad()
        loss.backward()

        # Update: the optimizer takes its step on every Parameter
        optimizer.step()
    return dict(model.named_parameters())
