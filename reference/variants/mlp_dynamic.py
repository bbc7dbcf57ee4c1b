"""mlp.dynamic -- control flow and weight sharing: DynamicNet.

The graph is built anew on every forward pass, so ordinary Python decides its shape: each pass
reuses the same middle layer 0 to 3 times, chosen at random.
"""
import random

import torch


class DynamicNet(torch.nn.Module):
    def __init__(self, D_in, H, D_out):
        super().__init__()
        self.input_linear = torch.nn.Linear(D_in, H)
        self.middle_linear = torch.nn.Linear(H, H)
        self.output_linear = torch.nn.Linear(H, D_out)

    def forward(self, x):
        h_relu = self.input_linear(x).clamp(min=0)
        # A different depth every pass, the same middle_linear weights each time
        for _ in range(random.randint(0, 3)):
            h_relu = self.middle_linear(h_relu).clamp(min=0)
        y_pred = self.output_linear(h_relu)
        return y_pred


def make(N, D_in, H, D_out):
    # Random input and output data
    x = torch.randn(N, D_in)
    y = torch.randn(N, D_out)
    # The model as our own Module; Linear initialises its own weights
    model = DynamicNet(D_in, H, D_out)
    return dict(x=x, y=y, model=model)


def train(x, y, model, lr, momentum, steps, record):
    # The loss function from nn: reduction="sum" makes it the sum of squared errors
    criterion = torch.nn.MSELoss(reduction="sum")
    # Plain SGD struggles with this strange model, so use momentum
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for t in range(steps):
        # Forward pass: compute predicted y
        y_pred = model(x)

        # Compute the loss: the sum of squared errors, kept a Tensor to backpropagate from
        loss = criterion(y_pred, y)
        record(t, loss)

        # Zero the gradients, then backprop to compute the gradients of every Parameter
        optimizer.zero_grad()
        loss.backward()

        # Update the weights: the optimizer takes its step on every Parameter
        optimizer.step()
    return dict(model.named_parameters())
