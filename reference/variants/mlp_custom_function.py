"""mlp.custom_function -- a custom autograd Function, MyReLU.

Subclass torch.autograd.Function and write forward and backward yourself; autograd calls your
backward when it reaches your operation.
"""
import torch


class MyReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        # Stash the input: backward needs to know where it was negative
        ctx.save_for_backward(input)
        return input.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        grad_input = grad_output.clone()
        # No gradient flows where the input was negative (at exactly 0 it passes through)
        grad_input[input < 0] = 0
        return grad_input


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
        # Function.apply runs our Function; alias it as relu
        relu = MyReLU.apply

        # Forward pass: compute predicted y
        y_pred = relu(x.mm(w1)).mm(w2)

        # Compute the loss: the sum of squared errors, kept a Tensor to backpropagate from
        loss = (y_pred - y).pow(2).sum()
        record(t, loss)

        # Backprop to compute the gradients of w1 and w2 with respect to the loss
        # (autograd calls MyReLU.backward on its way back)
        loss.backward()

        # Update the weights by gradient descent
        # outside the graph, then zero the gradients for the next step
        with torch.no_grad():
            w1 -= lr * w1.grad
            w2 -= lr * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()
    return dict(w1=w1, w2=w2)
