#!/usr/bin/env python
"""Fine-tune the v3 segmentation models with the mined hard negatives -> v4.

    python bin/script_3_train_v4.py                                  # all five
    python bin/script_3_train_v4.py --model highres_no_ela --model hard_negative
    python bin/script_3_train_v4.py --model highres_no_ela --epochs 1 --img-size 128 --data-dir demo

Each v4 run starts from <models-dir>/<name>_v3_best.safetensors, samples the authentic images listed in
<data-dir>/hard_negative_ids.txt 5x (python bin/find_hard_negatives.py --stage v3 writes it)
and doubles the FP penalty to 4.0; forged images keep their area weights and the authentic
twins of forged images stay in as negatives. Checkpoints: <models-dir>/<name>_v4_best.safetensors (and _last.pth),
which the predictor prefers over v3.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import RESUME_HINT, make_parser, run, setup_logging  # noqa: E402
from lib.flags import add_renamed  # noqa: E402
from lib.models.variants import V4_VARIANTS  # noqa: E402
from lib.options import add_training_args, options_from_args  # noqa: E402
from lib.paths import add_path_args, resolve_paths  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_renamed(parser, "--models", "--model", action="append", choices=list(V4_VARIANTS), default=None,
                help="variant to fine-tune (repeatable; default: all five)", old_nargs="+")
    add_training_args(parser)
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.training.train import require_hard_negatives, train_variants
    paths = resolve_paths(args)
    log_file = setup_logging("script_3_train_v4", paths.logs_dir)
    options = options_from_args(args)
    if options.use_hard_negatives:
        require_hard_negatives(paths)
    return train_variants([V4_VARIANTS[name] for name in args.model or V4_VARIANTS], options, paths, log_file)


if __name__ == "__main__":
    run(main, on_interrupt=RESUME_HINT)
