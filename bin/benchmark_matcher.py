#!/usr/bin/env python
"""Speed of the copy-move matcher on CPU: seconds per image for each stage in one process, and
the throughput of the threads the pipeline uses, on forged synthetic figures.

    python bin/benchmark_matcher.py                       # 512 px and 2000 px, 8 images each
    python bin/benchmark_matcher.py --sizes 768 1024 --images 16 --match-workers 4
    python bin/benchmark_matcher.py --input-dir bench/test_images   # + v2 and v3 on every 10th benchmark figure

Targets: at least 1 image/s at 512 px with 2 threads and at most 8 s for a 2000 px figure on 2 cores
(v2 and v3, and v3 at most 2x v2's time; v1 was held to 2 images/s and 3 s). Each stage is also timed
alone (keypoints, dense, fine).
"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.errors import ProjectError  # noqa: E402
from lib.options import add_shared, add_switches  # noqa: E402
from lib.paths import add_path_args, resolve_paths  # noqa: E402

log = logging.getLogger("benchmark_matcher")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2000], help="image sides in pixels")
    parser.add_argument("--images", type=int, default=8, help="images per size (default 8)")
    parser.add_argument("--input-dir", type=Path, default=None,
                        help="also time v2 and v3 on the figures of this folder (e.g. bench/test_images), --every "
                             "of them, one at a time, and name the slowest")
    parser.add_argument("--every", type=int, default=10, help="with --input-dir: every N-th figure (default 10)")
    add_shared(parser, "match_workers", 2, "--workers")
    add_shared(parser, "seed", 0)
    add_switches(parser, "progress")
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.imageio import list_images
    from lib.tools.benchmark import benchmark_matcher, benchmark_matcher_figures
    if args.images < 1 or args.match_workers < 1 or args.every < 1 or min(args.sizes) < 96:
        raise ProjectError("--images, --match-workers and --every must be at least 1, --sizes at least 96")
    figures = list_images(args.input_dir)[::args.every] if args.input_dir is not None else []
    if args.input_dir is not None and not figures:
        raise ProjectError(f"{args.input_dir}: no images found")
    log_file = setup_logging("benchmark_matcher", resolve_paths(args).logs_dir)
    table = benchmark_matcher(args.sizes, args.images, args.match_workers, args.seed, args.progress)
    log.info("copy-move matcher on forged synthetic figures (CPU):\n%s",
             table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if figures:
        timed = benchmark_matcher_figures(figures, args.progress)
        v2, v3 = timed["v2 s"].mean(), timed["v3 s"].mean()
        slowest = timed.loc[timed["v3 s"].idxmax()]
        log.info("v2 and v3 on %d figures of %s (every %d-th, one at a time): v2 %.2f s, v3 %.2f s a figure, "
                 "v3 / v2 %.2fx; slowest with v3: %s (%dx%d px) %.2f s (v2 %.2f s)", len(timed), args.input_dir,
                 args.every, v2, v3, v3 / v2, slowest["figure"], slowest["width"], slowest["height"],
                 slowest["v3 s"], slowest["v2 s"])
    print(f"log: {log_file}")
    return 0


if __name__ == "__main__":
    run(main)
