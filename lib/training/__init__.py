"""Fitting what learns: the one training loop every network variant runs (train: data, model,
optimiser, the epoch loop, validation and checkpoints, in named steps), its torch datasets,
sampling weights and the hard-negative file (datasets), multi-process training under
torchrun (distributed), a run's history CSV and curves (history), and the fitting of the
copy-move matcher's verifier on a benchmark's candidates (verifier)."""
