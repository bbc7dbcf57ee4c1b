"""poly.dynamic -- control flow and weight sharing: a cubic with a random higher-order tail.

Every forward pass picks at random whether to add nothing, e x^4, or e x^4 + e x^5: the same
Parameter e is reused, and ordinary Python decides the graph.
"""
import math
import random

import torch


class DynamicNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.randn(()))
        self.b = torch.nn.Parameter(torch.randn(()))
        self.c = torch.nn.Parameter(torch.randn(()))
        self.d = torch.nn.Parameter(torch.randn(()))
        self.e = torch.nn.Parameter(torch.randn(()))

    def forward(self, x):
        y = self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3
        # Orders 4 and 5, 4 alone or neither (a third of the time each), all weighted by the one Parameter e
        for exp in range(4, random.randint(4, 6)):
            y = y + self.e * x ** exp
        return y


def make(points):
    # Input and output data: sin(x) on a grid over [-pi, pi]
    x = torch.linspace(-math.pi, math.pi, points)
    y = torch.sin(x)
    model = DynamicNet()
    return dict(x=x, y=y, model=model)


def train(x, y, model, lr, momentum, steps, record):
    # The loss function from nn: reduction="sum" makes it the sum of squared errors
    criterion = torch.nn.MSELoss(reduction="sum")
    # Plain SGD struggles with this model, so use momentum
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for t in range(steps):
        # Forward pass: the cubic, and maybe a higher-order tail
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
