#!/usr/bin/env python
"""Train the small-forgery specialist: from scratch, on forgeries under 2% of the image, cropped around them.

    python bin/script_4_small_specialist.py                          # the seed's recipe: 40 epochs, 512 px
    python bin/script_4_small_specialist.py --max-fraction 0.03 --epochs 2 --img-size 128 --data-dir demo

Training images: forged ones whose forgery covers less than --max-fraction of the image (tiny,
< 0.5%, sampled 5x; small 2x), and the authentic ones as negatives (hard negatives 5x when
<data-dir>/hard_negative_ids.txt exists). Three draws in four crop around one forged region (a
connected component of the mask; 2-4x its extent, at least 128 px, the region whole inside) and
resize the crop to the training
size, so a 0.3% forgery fills several percent of the input; the rest use the whole image, as
inference does. Focal alpha 0.85 / gamma 4, lr 1e-4. Validated, and its best checkpoint chosen,
on the held-out small forgeries and authentic images, whole. Writes
<models-dir>/small_forgery_specialist_best.safetensors (and _last.pth), which the predictor joins by union
(max(ensemble, 0.8 x specialist); --no-specialist leaves it out), and, before training, a sheet
of sample crops with their forged pixels outlined next to the log. Refuses to train with fewer
than 5 small forgeries.
"""
import dataclasses
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import RESUME_HINT, make_parser, run, setup_logging  # noqa: E402
from lib.errors import ProjectError  # noqa: E402
from lib.imageio import write_png  # noqa: E402
from lib.models.variants import SPECIALIST  # noqa: E402
from lib.options import add_training_args, options_from_args  # noqa: E402
from lib.paths import add_path_args, resolve_paths  # noqa: E402

log = logging.getLogger("script_4_small_specialist")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--max-fraction", type=float, default=SPECIALIST.small.below,
                        help=f"train on forgeries under this fraction of the image "
                             f"(default: {SPECIALIST.small.below:g})")
    parser.add_argument("--sample-crops", type=int, default=12,
                        help="crops drawn in the sample sheet (default: 12; 0: none)")
    add_training_args(parser)
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.training.datasets import crop_sheet
    from lib.training.train import train_variants
    if not 0 < args.max_fraction <= 1:
        raise ProjectError(f"--max-fraction {args.max_fraction}: must be in (0, 1]")
    paths = resolve_paths(args)
    log_file = setup_logging("script_4_small_specialist", paths.logs_dir)
    options = options_from_args(args)
    variant = SPECIALIST.with_overrides(small=dataclasses.replace(SPECIALIST.small, below=args.max_fraction))

    def write_crop_sheet(train_set) -> None:
        sheet_path = log_file.with_name(f"{log_file.stem}_crops.png")
        write_png(sheet_path, crop_sheet(train_set, args.sample_crops, seed=options.seed))
        log.info("sample crops (forged pixels outlined; forged fraction of the image -> of the crop): %s",
                 sheet_path)

    return train_variants([variant], options, paths, log_file,
                          write_crop_sheet if args.sample_crops and log_file is not None else None)


if __name__ == "__main__":
    run(main, on_interrupt=RESUME_HINT)
