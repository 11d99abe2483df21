"""Low-level helpers: errors, distributed, atomic file I/O, RNG state, weight loading, imports.

Nothing in this package imports any other part of torchcv, so data, models, evaluation and the
engine can all use it without import cycles.
"""
