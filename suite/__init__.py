"""Benchmark suite for spiking neural networks that learn transmission delays."""

__version__ = "0.1.0"
