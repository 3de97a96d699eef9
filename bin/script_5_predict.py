#!/usr/bin/env python
"""Two-pass inference on a folder of images -> a validated submission.csv.

    python bin/script_5_predict.py                                   # test_images -> submission.csv
    python bin/script_5_predict.py --input-dir demo/test_images --output demo_submission.csv --models-dir models
    python bin/script_5_predict.py --seg-threshold 0.30 --min-area 100   # re-run: post-processing only (cache)

Pass 1 (the classifier) gates each image; pass 2 runs the segmentation ensemble with flip
TTA, the specialist union, the brightness-adaptive threshold and the min-area filter. With
--fusion matcher|first|union the training-free copy-move matcher runs too (alone, first, or
in union; see lib/inference/fusion.py). Per-image results of the networks and of the matcher are
cached under <models-dir>/cache, so a re-run with other thresholds runs neither again.

By default (--fusion auto) it runs what was validated for the models in --models-dir: the rule
and thresholds that validate_test.py --compare-fusion / --sweep chose on the held-out split and
wrote to <models-dir>/postprocess.json (checked against the checkpoints, the matcher and its
verifier: a mismatch stops with the command that re-tunes); without that file, the matcher
alone at its verifier's threshold. Choosing the rule (--fusion) lets you set the thresholds.

    python bin/script_5_predict.py --fusion matcher --input-dir demo/test_images --output matcher.csv
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.flags import from_args, given_dests  # noqa: E402
from lib.options import AUTO, PredictorOptions, add_inference_args  # noqa: E402
from lib.paths import ROOT, add_path_args, resolve_paths  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--input-dir", type=Path, default=None,
                        help="folder of images to predict (default: <data-dir>/test_images)")
    parser.add_argument("--output", type=Path, default=ROOT / "submission.csv",
                        help="submission file to write (default: <root>/submission.csv)")
    add_inference_args(parser, fusion=AUTO)
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.inference.infer import folder_images, post_config_from_args, predict_paths, write_predictions
    paths = resolve_paths(args)
    log_file = setup_logging("script_5_predict", paths.logs_dir)
    config = post_config_from_args(args, paths.models_dir, given_dests(parser, argv))
    images = folder_images(args.input_dir or paths.test_images)
    results, _ = predict_paths(from_args(PredictorOptions, args), paths.models_dir, images, config.fusion,
                               gate=config.classifier_threshold)
    print(write_predictions(results, config, args.output))
    print(f"log: {log_file}")
    return 0


if __name__ == "__main__":
    run(main)
