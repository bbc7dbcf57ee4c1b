"""mlp.optim -- the optim package does the update: Adam instead of hand-written SGD.

The optimizer holds the parameters and its own state; zero_grad() and step() replace the
manual update loop.
"""
import torch


def make(N, D_in, H, D_out):
    # Random input and output data
    x = torch.randn(N, D_in)
    y = torch.randn(N, D_out)
    # The model as a sequence of layers; Linear initialises its own weights
    model = torch.nn.Sequential(
        torch.nn.Linear(D_in, H),
        torch.nn.ReLU(),
        torch.nn.Linear(H, D_out),
    )
    return dict(x=x, y=y, model=model)


def train(x, y, model, lr, steps, record):
    # The loss function from nn: reduction="sum" makes it the sum of squared errors
    loss_fn = torch.nn.MSELoss(reduction="sum")
    # Adam updates the model's parameters for us
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for t in range(steps):
        # Forward pass: compute predicted y
        y_pred = model(x)

        # Compute the loss: the sum of squared errors, kept a Tensor to backpropagate from
        loss = loss_fn(y_pred, y)
        record(t, loss)

        # Zero the gradients, then backprop to compute the gradients of every Parameter
        optimizer.zero_grad()
        loss.backward()

        # Update the weights: the optimizer takes its step on every Parameter
        optimizer.step()
    return dict(model.named_parameters())
