"""mlp.nn -- the nn package: layers as Modules, a loss function from the library.

nn.Sequential chains Linear -> ReLU -> Linear; each Linear owns its weight and bias as
Parameters, initialised by the layer itself; the model is called like a function. We still
update the parameters by hand.
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
    for t in range(steps):
        # Forward pass: compute predicted y
        y_pred = model(x)

        # Compute the loss: the sum of squared errors, kept a Tensor to backpropagate from
        loss = loss_fn(y_pred, y)
        record(t, loss)

        # Zero the gradients, then backprop to compute the gradients of every Parameter
        model.zero_grad()
        loss.backward()

        # Update the weights by gradient descent
        with torch.no_grad():
            for param in model.parameters():
                param -= lr * param.grad
    return dict(model.named_parameters())
