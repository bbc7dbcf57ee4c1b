"""mlp.autograd -- autograd computes the backward pass.

Weights created with requires_grad=True are tracked: loss.backward() fills w1.grad and w2.grad,
so the hand-written backward pass disappears.
"""
import torch


def make(N, D_in, H, D_out):
    # Random input and output data
    x = torch.randn(N, D_in)
    y = torch.randn(N, D_out)
    # Randomly initialised weights
    # requires_grad=True asks autograd to track them
    w1 = torch.randn(D_in, H, requires_grad=True)
    w2 = torch.randn(H, D_out, requires_grad=True)
    return dict(x=x, y=y, w1=w1, w2=w2)


def train(x, y, w1, w2, lr, steps, record):
    for t in range(steps):
        # Forward pass: compute predicted y
        y_pred = x.mm(w1).clamp(min=0).mm(w2)

        # Compute the loss: the sum of squared errors, kept a Tensor to backpropagate from
        loss = (y_pred - y).pow(2).sum()
        record(t, loss)

        # Backprop to compute the gradients of w1 and w2 with respect to the loss
        loss.backward()

        # Update the weights by gradient descent
        # outside the graph, then zero the gradients for the next step
        with torch.no_grad():
            w1 -= lr * w1.grad
            w2 -= lr * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()
    return dict(w1=w1, w2=w2)
