"""Shared code of the copy-move forgery detection project: every bin/ script parses its flags
and calls into here.

The shared core sits at the top of the folder (cli, errors, fileio, flags, options, paths,
device, draw, imageio, integrity); each subpackage is one layer of the architecture, lowest
first: competition (the format and the metric), models (networks, losses, variants,
checkpoints), data (the Kaggle layout, split, augmentation, synthetic figures), matching (the
training-free copy-move detector), inference (the predictor, post-processing, fusion with the
matcher), training (the one training loop, the verifier's fitting), evaluation (scores, sweeps,
reports) and tools (the full pipeline, the Kaggle package, benchmarks). A module imports from
its own layer or lower ones, never higher: tests/test_layout.py checks it, and that the import
graph has no circle."""
