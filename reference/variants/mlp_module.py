"""mlp.module -- a custom nn.Module, TwoLayerNet.

Subclass nn.Module: create the layers in __init__, say how they connect in forward. Anything a
Sequential cannot express (here, clamp as the ReLU) goes in forward.
"""
import torch


class TwoLayerNet(torch.nn.Module):
    def __init__(self, D_in, H, D_out):
        super().__init__()
        self.linear1 = torch.nn.Linear(D_in, H)
        self.linear2 = torch.nn.Linear(H, D_out)

    def forward(self, x):
        h_relu = self.linear1(x).clamp(min=0)
        y_pred = self.linear2(h_relu)
        return y_pred


def make(N, D_in, H, D_out):
    # Random input and output data
    x = torch.randn(N, D_in)
    y = torch.randn(N, D_out)
    # The model as our own Module; Linear initialises its own weights
    model = TwoLayerNet(D_in, H, D_out)
    return dict(x=x, y=y, model=model)


def train(x, y, model, lr, optimizer, steps, record):
    # The loss function from nn: reduction="sum" makes it the sum of squared errors
    criterion = torch.nn.MSELoss(reduction="sum")
    # The official tutorial uses SGD; blog-nn-2022 uses Adam (optimizer="adam")
    if optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
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
