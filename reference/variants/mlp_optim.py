"""mlp.optim -- the optim package does the update: Adam instead of hand-written SGD.

The optimizer holds the parameters and its own state; zero_grad() and step() replace the
manual update loop.
"""
import torch


def make(N, D_in, H, D_out):
    # Random input and output data
    x = torch.randn(N, D_in)
    y = torch.randn(N, D_out)
    model = torch.nn.Sequential(
        torch.nn.Linear(D_in, H),
        torch.nn.ReLU(),
        torch.nn.Linear(H, D_out),
    )
    return dict(x=x, y=y, model=model)


def train(x, y, model, lr, steps, record):
    loss_fn = torch.nn.MSELoss(reduction="sum")
    # Adam updates the model's parameters for us
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for t in range(steps):
        y_pred = model(x)

        loss = loss_fn(y_pred, y)
        record(t, loss)

        # Zero the gradients, backprop, and let the optimizer take its step
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return dict(model.named_parameters())
