#!/usr/bin/env python
"""Time the batched predictor against a per-image, per-flip, per-model loop on the same images,
check that both give the same probabilities, and print the speed-up.

    python bin/benchmark_inference.py --random-models --data-dir demo --images 8      # no checkpoints needed
    python bin/benchmark_inference.py --stage v3 --images 32                          # your checkpoints
"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.errors import ProjectError  # noqa: E402
from lib.flags import add_renamed  # noqa: E402
from lib.options import add_inference_args  # noqa: E402
from lib.paths import add_path_args, resolve_paths  # noqa: E402

log = logging.getLogger("benchmark_inference")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--input-dir", type=Path, default=None, help="images (default: <data-dir>/test_images)")
    add_renamed(parser, "--limit", "--images", type=int, default=16, help="number of images (default 16)")
    parser.add_argument("--repeat", type=int, default=1, help="repeat and keep the best time (default 1)")
    parser.add_argument("--forward-chunk", type=int, default=None,
                        help="images per forward call (default: 1 on CPU, the whole TTA batch on CUDA)")
    parser.add_argument("--random-models", action="store_true",
                        help="the default pipeline's models with random weights instead of checkpoints")
    parser.add_argument("--img-size", type=int, default=512, help="segmentation size with --random-models")
    add_inference_args(parser, post=False)
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.device import resolve_device
    from lib.flags import from_args
    from lib.inference.infer import folder_images, predictor_of
    from lib.options import PredictorOptions
    from lib.tools.benchmark import benchmark, random_predictor
    paths = resolve_paths(args)
    log_file = setup_logging("benchmark_inference", paths.logs_dir)
    if args.images < 1 or args.repeat < 1:
        raise ProjectError("--images and --repeat must be at least 1")
    images = folder_images(args.input_dir or paths.test_images)[:args.images]
    options = dict(tta=args.tta, aggregate=args.aggregate, batch_size=args.batch_size,
                   workers=args.workers, forward_chunk=args.forward_chunk)
    if args.random_models:
        predictor = random_predictor(args.img_size, device=resolve_device(args.device), **options)
    else:
        predictor = predictor_of(from_args(PredictorOptions, args), paths.models_dir)
        predictor.forward_chunk = args.forward_chunk or predictor.forward_chunk
    log.info("benchmark on %d images of %s: %s, forward chunk %d", len(images), images[0].parent,
             predictor.describe(), predictor.forward_chunk)
    result = benchmark(predictor, images, args.repeat)
    log.info("\n%s", result.table())
    print(f"log: {log_file}")
    return 0 if result.same else 1


if __name__ == "__main__":
    run(main)
