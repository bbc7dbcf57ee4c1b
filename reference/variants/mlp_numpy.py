"""mlp.numpy -- a two-layer ReLU network written in plain NumPy.

NumPy knows nothing about graphs or gradients, so the forward pass and the backward pass are both
written by hand. Every later variant starts from this program.
"""
import numpy as np


def make(N, D_in, H, D_out):
    # Random input and output data
    x = np.random.randn(N, D_in)
    y = np.random.randn(N, D_out)
    # Randomly initialised weights
    w1 = np.random.randn(D_in, H)
    w2 = np.random.randn(H, D_out)
    return dict(x=x, y=y, w1=w1, w2=w2)


def backward(x, y, w1, w2, h, h_relu, y_pred):
    """Gradients of the squared-error loss with respect to w1 and w2 (chain rule by hand)."""
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h_relu.T.dot(grad_y_pred)
    grad_h_relu = grad_y_pred.dot(w2.T)
    grad_h = grad_h_relu.copy()
    grad_h[h < 0] = 0
    grad_w1 = x.T.dot(grad_h)
    return grad_w1, grad_w2


def train(x, y, w1, w2, lr, steps, record):
    for t in range(steps):
        # Forward pass: compute predicted y
        h = x.dot(w1)
        h_relu = np.maximum(h, 0)
        y_pred = h_relu.dot(w2)

        # Compute the loss: the sum of squared errors
        loss = np.square(y_pred - y).sum()
        record(t, loss)

        # Backprop to compute the gradients of w1 and w2 with respect to the loss
        grad_w1, grad_w2 = backward(x, y, w1, w2, h, h_relu, y_pred)

        # Update the weights by gradient descent
        w1 -= lr * grad_w1
        w2 -= lr * grad_w2
    return dict(w1=w1, w2=w2)
