"""mlp.nn -- the nn package: layers as Modules, a loss function from the library.

nn.Sequential chains Linear -> ReLU -> Linear; each Linear owns its weight and bias as
Parameters, initialised by the layer itself. We still update the parameters by hand.
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
    # Sum of squared errors, as in the earlier variants
    loss_fn = torch.nn.MSELoss(reduction="sum")
    for t in range(steps):
        # Forward pass: call the model like a function
        y_pred = model(x)

        loss = loss_fn(y_pred, y)
        record(t, loss)

        # Zero the gradients, then backprop into every Parameter of the model
        model.zero_grad()
        loss.backward()

        # Gradient descent on each Parameter
        with torch.no_grad():
            for param in model.parameters():
                param -= lr * param.grad
    return dict(model.named_parameters())
