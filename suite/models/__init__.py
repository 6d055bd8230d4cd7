"""Modules built on the functional kernels of :mod:`suite.ops`."""
