"""mlp.tensor -- the same network with torch Tensors.

A Tensor is an n-dimensional array like NumPy's, but it can live on a GPU. We still write the
backward pass by hand.
"""
import torch


def make(N, D_in, H, D_out):
    # Random input and output data
    x = torch.randn(N, D_in)
    y = torch.randn(N, D_out)
    # Randomly initialised weights
    w1 = torch.randn(D_in, H)
    w2 = torch.randn(H, D_out)
    return dict(x=x, y=y, w1=w1, w2=w2)


def backward(x, y, w1, w2, h, h_relu, y_pred):
    """Gradients of the squared-error loss with respect to w1 and w2 (chain rule by hand)."""
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h_relu.t().mm(grad_y_pred)
    grad_h_relu = grad_y_pred.mm(w2.t())
    grad_h = grad_h_relu.clone()
    grad_h[h < 0] = 0
    grad_w1 = x.t().mm(grad_h)
    return grad_w1, grad_w2


def train(x, y, w1, w2, lr, steps, record):
    for t in range(steps):
        # Forward pass: compute predicted y
        h = x.mm(w1)
        h_relu = h.clamp(min=0)
        y_pred = h_relu.mm(w2)

        # Compute the loss: the sum of squared errors, as a Python number
        loss = (y_pred - y).pow(2).sum().item()
        record(t, loss)

        # Backprop to compute the gradients of w1 and w2 with respect to the loss
        grad_w1, grad_w2 = backward(x, y, w1, w2, h, h_relu, y_pred)

        # Update the weights by gradient descent
        w1 -= lr * grad_w1
        w2 -= lr * grad_w2
    return dict(w1=w1, w2=w2)
