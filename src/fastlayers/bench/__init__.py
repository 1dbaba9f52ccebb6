"""Benchmarks of fastlayers against its NumPy path and PyTorch: ``python -m fastlayers.bench``."""
