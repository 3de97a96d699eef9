#!/usr/bin/env python
"""Mine hard negatives: authentic training images that the current pipeline calls forged.

    python bin/find_hard_negatives.py                          # v4 models if present, else v3
    python bin/find_hard_negatives.py --classifier-threshold 0.30 --seg-threshold 0.40 --min-area 400

Runs the same predictor and post-processing as script_5_predict over the authentic images of
the training side of the held-out split (validation images are never mined), writes their
ids to <data-dir>/hard_negative_ids.txt (or --output), which the training scripts read, and
prints the count, the brightness breakdown and the false-positive area distribution.
"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.errors import ProjectError  # noqa: E402
from lib.flags import from_args, given_dests  # noqa: E402
from lib.options import PredictorOptions, add_inference_args  # noqa: E402
from lib.paths import HARD_NEGATIVES_FILE, add_path_args, resolve_paths  # noqa: E402

log = logging.getLogger("find_hard_negatives")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--output", type=Path, default=None,
                        help=f"hard-negative file to write (default: <data-dir>/{HARD_NEGATIVES_FILE})")
    parser.add_argument("--authentic-dir", type=Path, default=None,
                        help="mine this folder of authentic images (ids: file names without extension) "
                             "instead of the authentic images of the training split")
    parser.add_argument("--include-augmented", action="store_true",
                        help="also mine the generated authentic_augmented images")
    add_inference_args(parser)
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.data.manifest import AUTHENTIC, load_manifest
    from lib.data.split import load_or_make_split, split_rows
    from lib.evaluation.evaluate import describe_false_positives, false_positives
    from lib.inference.infer import folder_images, post_config_from_args, predict_paths
    from lib.training.datasets import write_hard_negatives
    paths = resolve_paths(args)
    log_file = setup_logging("find_hard_negatives", paths.logs_dir)
    config = post_config_from_args(args, paths.models_dir, given_dests(parser, argv))
    output = args.output or paths.data_dir / HARD_NEGATIVES_FILE

    if args.authentic_dir is not None:
        images = folder_images(args.authentic_dir)
        ids = [p.stem for p in images]
    else:
        manifest = load_manifest(paths, progress=args.progress)
        train_rows, _ = split_rows(manifest, load_or_make_split(paths, manifest))
        rows = train_rows[(train_rows["label"] == AUTHENTIC)
                          & (args.include_augmented | ~train_rows["augmented"].astype(bool))]
        if rows.empty:
            raise ProjectError(f"{paths.data_dir}: no authentic training images to mine")
        images, ids = [paths.data_dir / p for p in rows["image_path"]], rows["image_id"].tolist()
    results, described = predict_paths(from_args(PredictorOptions, args), paths.models_dir, images, config.fusion,
                                       gate=config.classifier_threshold, desc="mine")
    found = false_positives(results, ids, config)
    header = f"hard negatives: authentic training images predicted forged\n{config.summary()}\n{described}"
    write_hard_negatives(output, found["image_id"], header)
    log.info("%s\nwritten: %s", describe_false_positives(found, len(ids)), output)
    print(f"{output}: {len(found)} hard negatives of {len(ids)} authentic images")
    print(f"log: {log_file}")
    return 0


if __name__ == "__main__":
    run(main)
