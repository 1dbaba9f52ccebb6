"""The NumPy path: a readable, vectorized reference for every op.

Functions here take already-validated C-contiguous float32 arrays and normalized
arguments (see fastlayers/_validation.py) and return float32 arrays.
"""
