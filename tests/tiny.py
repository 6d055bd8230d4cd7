"""The tiny protocol the tests train on, and a reference band on it (importable by test modules: a name
`conftest` is ambiguous once tests/numba_sim has its own)."""

from pathlib import Path

TINY_PROTOCOL = """\
name: tiny
version: 1
description: "test protocol: 10 synthetic SSC-schema classes, one 8-neuron hidden layer"
embedded: true
data:
  kind: ssc
  n_bins: 20
  time_step_ms: 10
  synthetic: {n_classes: 10, train_per_class: 4, valid_per_class: 2, test_per_class: 2, seed: 0}
model:
  n_hidden: [8]
  kernel_size: 5
  dropout: 0.1
optim:
  epochs: 4
  batch_size: 16
measure: {memory: false, training_latency: false, warmup: 1, repeats: 2}
seeds: [0]
"""


def write_band(directory: Path, value: float, tolerance: float, method: str = "axonal band") -> Path:
    """A reference directory holding one band on the tiny protocol's axonal test accuracy (percent)."""
    directory.mkdir()
    (directory / "tiny.yaml").write_text(
        "entries:\n"
        f"  - {{protocol: tiny, method: {method}, variant: axonal, metric: test_acc_at_best_valid, value: {value},"
        f" source: tests, status: measured, tolerance: {{abs: {tolerance}}}}}\n")
    return directory
