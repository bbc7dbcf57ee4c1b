"""What blog-mnist-2021's test loop prints, and the end-of-run report of an mnist.* run."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TestResult:
    """One pass of the test loop.

    avg_loss is computed as blog-mnist-2021 computes it (summed batch mean losses / number of samples);
    avg_loss_per_batch divides the same sum by the number of batches: the average loss.
    """

    __test__ = False  # not a pytest test class

    accuracy: float  # fraction of test samples classified correctly
    avg_loss: float
    avg_loss_per_batch: float
    size: int  # test samples
    batches: int

    def lines(self) -> list[str]:
        return [
            "Test Error: ",
            f" Accuracy: {(100 * self.accuracy):>0.1f}%, Avg loss: {self.avg_loss:>8f} ",
            f" (Avg loss as blog-mnist-2021 computes it: summed batch means / {self.size} samples)",
            f" Avg loss per batch: {self.avg_loss_per_batch:>8f} (summed batch means / {self.batches} batches)",
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def format_train_line(loss: float, current: int, size: int) -> str:
    """The line blog-mnist-2021's train loop prints every 100 batches."""
    return f"loss: {loss:>7f}  [{current:>5d}/{size:>5d}]"


def rebuild_model(trajectory: Any, device: Any = None) -> torch.nn.Module:
    """The trained model of an mnist.* Trajectory, at its dtype, on `device` (default: its own)."""
    from ..catalogue import lookup

    variant = lookup(trajectory.variant)
    if variant.family != "mnist":
        raise ValueError(f"{trajectory.variant} is not an MNIST variant")
    module = variant.module()
    # cast before loading: load_state_dict copies into the model's own dtype, and a float32 model
    # would round a float64 run's weights
    model = module.NeuralNetwork(trajectory.hyperparameters["final_relu"]).to(dtype=getattr(torch, trajectory.dtype))
    model.load_state_dict({k: v for k, v in trajectory.params.items()})
    dev = torch.device(trajectory.device if device is None else device)
    return model.to(device=dev)


def evaluate(trajectory: Any, device: Any = None) -> TestResult:
    """Run the variant's test loop on the trained model of an mnist.* Trajectory.

    Same data (the run's data_root), batch size, dtype and, by default, device as the run: the
    numbers the run's last test loop printed.
    """
    from ..catalogue import lookup
    from torch.utils.data import DataLoader
    from .data import load_datasets

    module = lookup(trajectory.variant).module()
    model = rebuild_model(trajectory, device)
    hp = trajectory.hyperparameters
    _, test_data = load_datasets(hp["data_root"])
    loader = DataLoader(test_data, batch_size=hp["batch_size"])
    return module.test_loop(loader, model, torch.nn.CrossEntropyLoss())


def run_report(trajectory: Any) -> str:
    """What the command line prints after an mnist.* run: the data it used and its test loop's result."""
    from .data import describe

    return f"data: {describe(trajectory.hyperparameters['data_root'])}\n{evaluate(trajectory)}"
