#!/usr/bin/env python
"""Trained networks against the copy-move matcher on a benchmark's test split, in one table.

    python bin/make_benchmark.py --output-dir bench
    python bin/script_1_train_v3.py --data-dir bench --models-dir bench/models --model selfcorr \
        --img-size 256 --epochs 6 --encoder-weights none
    python bin/evaluate_networks.py --data-dir bench --models-dir bench/models --stage v3

Rows: all authentic, matcher v2 alone, each network alone, each network fused with the matcher;
columns: score, image recall, FP rate, pixel F1 of the forged figures, and the forged figures'
score by texture group. Thresholds and the fusion rule are chosen on the validation split (the
held-out split of the training images), never on the test split (lib/evaluation/comparison.py). The networks
are each variant's checkpoint at --stage (v4, falling back to v3), or those given with --ensemble.
Writes <logs-dir>/networks_<time>.csv.
"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.errors import ProjectError  # noqa: E402
from lib.options import add_inference_args  # noqa: E402
from lib.paths import add_path_args, require_benchmark, resolve_paths  # noqa: E402

log = logging.getLogger("evaluate_networks")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_inference_args(parser, post=False)
    add_path_args(parser)
    args = parser.parse_args(argv)
    paths = resolve_paths(args)
    require_benchmark(paths, ("meta.csv", "solution.csv", "test_images", "train_images"))
    log_file = setup_logging("evaluate_networks", paths.logs_dir)

    from lib.device import resolve_device
    from lib.evaluation.comparison import compare_on_benchmark, format_table
    from lib.fileio import atomic_write_text
    from lib.inference.infer import default_ensemble, parse_member_spec
    checkpoints = ([parse_member_spec(s)[0] for s in args.ensemble] if args.ensemble
                   else [path for path, _ in default_ensemble(paths.models_dir, args.stage)])
    for path in checkpoints:
        if not path.is_file():
            raise ProjectError(f"{path}: checkpoint not found")
    table = compare_on_benchmark(paths, checkpoints, resolve_device(args.device), args.match_workers,
                                 args.progress, tta=args.tta)
    out = paths.logs_dir / f"{log_file.stem.replace('evaluate_networks', 'networks')}.csv"
    atomic_write_text(out, table.to_csv(index=False))
    log.info("benchmark %s, test split (thresholds and fusion rules chosen on the validation split):\n%s",
             paths.data_dir, format_table(table))
    print(f"table: {out}")
    print(f"log: {log_file}")
    return 0


if __name__ == "__main__":
    run(main)
