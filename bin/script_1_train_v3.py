#!/usr/bin/env python
"""Train the five v3 segmentation models (AttentionFPN), or the ones named with --model.

    python bin/script_1_train_v3.py                                  # all five
    python bin/script_1_train_v3.py --model highres_no_ela --epochs 2 --img-size 128 --encoder-weights none

Each variant's recipe is in lib/models/variants.py; checkpoints go to <models-dir>/<name>_v3_best.safetensors
(and _last.pth, the resume state).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import RESUME_HINT, make_parser, run, setup_logging  # noqa: E402
from lib.models.variants import V3_VARIANTS  # noqa: E402
from lib.options import add_training_args, options_from_args  # noqa: E402
from lib.paths import add_path_args, resolve_paths  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--model", action="append", choices=list(V3_VARIANTS), default=None,
                        help="variant to train (repeatable; default: all five)")
    add_training_args(parser)
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.training.train import train_variants
    paths = resolve_paths(args)
    log_file = setup_logging("script_1_train_v3", paths.logs_dir)
    options = options_from_args(args)
    return train_variants([V3_VARIANTS[name] for name in args.model or V3_VARIANTS], options, paths, log_file)


if __name__ == "__main__":
    run(main, on_interrupt=RESUME_HINT)
