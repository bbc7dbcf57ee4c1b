"""mlp.variable -- the legacy Variable / .data API (PyTorch before 0.4).

Old programs wrapped tensors in torch.autograd.Variable, cast them with .type(torch.FloatTensor)
and updated weights through .data to stay outside the graph. Today Variable returns a plain
Tensor, and .data still bypasses autograd, so the program computes what mlp.autograd computes.
"""
import torch
from torch.autograd import Variable

dtype = torch.FloatTensor  # the legacy way to name a CPU float32 tensor type


def make(N, D_in, H, D_out):
    # Random input and output data
    # requires_grad=False: they need no gradients
    x = Variable(torch.randn(N, D_in).type(dtype), requires_grad=False)
    y = Variable(torch.randn(N, D_out).type(dtype), requires_grad=False)
    # Randomly initialised weights
    # requires_grad=True asks autograd to track them
    w1 = Variable(torch.randn(D_in, H).type(dtype), requires_grad=True)
    w2 = Variable(torch.randn(H, D_out).type(dtype), requires_grad=True)
    return dict(x=x, y=y, w1=w1, w2=w2)


def train(x, y, w1, w2, lr, steps, record):
    for t in range(steps):
        # Forward pass: compute predicted y
        y_pred = x.mm(w1).clamp(min=0).mm(w2)

        # Compute the loss: the sum of squared errors, kept a Tensor to backpropagate from
        loss = (y_pred - y).pow(2).sum()
        record(t, loss.data)

        # Backprop to compute the gradients of w1 and w2 with respect to the loss
        loss.backward()

        # Update the weights by gradient descent
        # through .data, which autograd does not see
        w1.data -= lr * w1.grad.data
        w2.data -= lr * w2.grad.data

        # Zero the gradients by hand
        w1.grad.data.zero_()
        w2.grad.data.zero_()
    return dict(w1=w1, w2=w2)
