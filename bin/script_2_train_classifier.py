#!/usr/bin/env python
"""Train the forged/authentic classifier that gates inference (pass 1), best by validation ROC AUC.

    python bin/script_2_train_classifier.py
    python bin/script_2_train_classifier.py --epochs 2 --img-size 128 --encoder-weights none

Recipe in lib/models/variants.py (CLASSIFIER); checkpoints go to <models-dir>/binary_classifier_best.safetensors
(and _last.pth to resume).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import RESUME_HINT, make_parser, run, setup_logging  # noqa: E402
from lib.models.variants import CLASSIFIER  # noqa: E402
from lib.options import add_training_args, options_from_args  # noqa: E402
from lib.paths import add_path_args, resolve_paths  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_training_args(parser)
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.training.train import train_variants
    paths = resolve_paths(args)
    log_file = setup_logging("script_2_train_classifier", paths.logs_dir)
    return train_variants([CLASSIFIER], options_from_args(args), paths, log_file)


if __name__ == "__main__":
    run(main, on_interrupt=RESUME_HINT)
