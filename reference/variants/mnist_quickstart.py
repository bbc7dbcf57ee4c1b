"""mnist.quickstart -- a digit classifier: nn.Module, DataLoader, a train loop and a test loop (blog-mnist-2021).

Images go through Flatten and a stack of Linear and ReLU layers to 10 logits; CrossEntropyLoss and
SGD train it one batch of 64 at a time, and a test loop measures accuracy and the average loss.
As documented, the stack ends with a ReLU that clamps the logits at 0 (final_relu=True);
mnist.quickstart_fixed leaves it out. `steps` counts training batches, across epochs.
"""
import math
from itertools import islice

import torch
from torch import nn
from torch.utils.data import DataLoader

from reference.mnist import TestResult, load_datasets


class NeuralNetwork(nn.Module):
    def __init__(self, final_relu=True):
        super().__init__()
        self.flatten = nn.Flatten()
        layers = [nn.Linear(28 * 28, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)]
        if final_relu:
            layers.append(nn.ReLU())  # as documented: no logit can be negative (an erratum)
        self.linear_relu_stack = nn.Sequential(*layers)

    def forward(self, x):
        x = self.flatten(x)
        logits = self.linear_relu_stack(x)
        return logits


def where(model):
    """The data stay on the CPU; each batch moves to the model's device (and dtype)."""
    p = next(model.parameters())
    return p.device, p.dtype


def train_loop(dataloader, model, loss_fn, optimizer, record=None, first=0, batches=None):
    """One epoch (or its first `batches` batches); returns what blog-mnist-2021 prints every 100 batches."""
    size = len(dataloader.dataset)
    device, dtype = where(model)
    printed = []
    for batch, (X, y) in enumerate(islice(dataloader, batches)):
        X, y = X.to(device, dtype), y.to(device)
        # Compute prediction and loss
        pred = model(X)
        loss = loss_fn(pred, y)
        if record is not None:
            record(first + batch, loss)

        # Backpropagation
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        if batch % 100 == 0:
            printed.append((loss.item(), batch * len(X), size))  # loss, current, size
    return printed


def test_loop(dataloader, model, loss_fn):
    size = len(dataloader.dataset)
    num_batches = len(dataloader)
    device, dtype = where(model)
    test_loss, correct = 0, 0

    with torch.no_grad():
        for X, y in dataloader:
            X, y = X.to(device, dtype), y.to(device)
            pred = model(X)
            test_loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()

    # blog-mnist-2021 divides the summed batch means by the number of samples (an erratum): about
    # batch_size times too small. Their average divides by the number of batches.
    return TestResult(accuracy=correct / size, avg_loss=test_loss / size,
                      avg_loss_per_batch=test_loss / num_batches, size=size, batches=num_batches)


def make(data_root, final_relu):
    # Images (1x28x28, in [0, 1]) and labels 0..9; data_root "" is the embedded default
    training_data, test_data = load_datasets(data_root)
    model = NeuralNetwork(final_relu)
    return dict(training_data=training_data, test_data=test_data, model=model)


def train(training_data, test_data, model, batch_size, lr, shuffle, steps, record):
    # The official quickstart's loader: no shuffling unless asked for (the document never shows it)
    train_dataloader = DataLoader(training_data, batch_size=batch_size, shuffle=shuffle)
    test_dataloader = DataLoader(test_data, batch_size=batch_size)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    # Epochs as in the tutorial (tested after each); the last may stop early
    per_epoch = len(train_dataloader)
    for epoch in range(math.ceil(steps / per_epoch)):
        first = epoch * per_epoch
        train_loop(train_dataloader, model, loss_fn, optimizer, record, first, batches=steps - first)
        test_loop(test_dataloader, model, loss_fn)
    return dict(model.named_parameters())
