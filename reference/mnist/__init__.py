"""Support for the MNIST classifier of blog-mnist-2021 (mnist.* variants): data, checkpoints, reports.

    load_datasets(data_root)      (training_data, test_data): "" = the embedded default, else MNIST IDX files
    read_idx / write_idx          the IDX format, raw or .gz, checked against its header
    save_state_dict / load_state_dict   checkpoints that never overwrite unless asked
    evaluate(trajectory)          the test loop's accuracy and both average losses for a finished run
    run_report(trajectory)        the lines the command line prints after an mnist.* run
"""
from .checkpoint import CheckpointError, load_state_dict, save_state_dict
from .data import (
    ENV_VAR,
    MnistDataError,
    batches_per_epoch,
    check_root,
    describe,
    embedded_digits,
    export_embedded,
    load_datasets,
    read_mnist,
    resolve_root,
)
from .idx import IdxFormatError, read_idx, write_idx
from .report import TestResult, evaluate, format_train_line, rebuild_model, run_report

__all__ = [
    "CheckpointError", "ENV_VAR", "check_root", "IdxFormatError", "MnistDataError", "TestResult", "batches_per_epoch",
    "describe", "embedded_digits", "evaluate", "export_embedded", "format_train_line", "load_datasets",
    "load_state_dict", "read_idx", "read_mnist", "rebuild_model", "resolve_root", "run_report", "save_state_dict", "write_idx",
]
