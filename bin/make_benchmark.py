#!/usr/bin/env python
"""Write the development benchmark: synthetic figures that behave like real ones (more content
types, copies of flat background, figures re-saved with JPEG, rescaling and noise, hard authentic
figures), split by case_id into a training part and a test part with its solution, plus meta.csv
and events.csv to report results by group.

    python bin/make_benchmark.py --output-dir bench                # 1,000 figures: ~600 train, ~400 test
    python bin/make_benchmark.py --output-dir bench_small --n 60     # a quick one

Layout: bench/train_images/{forged,authentic}/ + bench/train_masks/ (training and validation, split
by the project's split file when training runs), bench/test_images/ + bench/solution.csv (report
here, never tune on it), bench/meta.csv (one row per image file), bench/events.csv (one row per
duplication event). The same generator as make_demo_data.py (lib/data/demo), in its BENCHMARK style.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import time  # noqa: E402

from lib.cli import make_parser, run  # noqa: E402
from lib.flags import add_renamed  # noqa: E402
from lib.options import add_shared, add_switches  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_renamed(parser, "--out", "--output-dir", type=Path, required=True,
                help="output folder (relative to the current directory)")
    parser.add_argument("--n", type=int, default=1000, help="figures (cases) in all (default: 1000)")
    parser.add_argument("--test-fraction", type=float, default=0.4,
                        help="fraction of the cases in the test part (default: 0.4)")
    parser.add_argument("--forged-fraction", type=float, default=0.5, help="fraction of forged cases (default: 0.5)")
    parser.add_argument("--twin-fraction", type=float, default=0.85,
                        help="fraction of forged training cases with an authentic twin (default: 0.85)")
    parser.add_argument("--min-size", type=int, default=256, help="smallest image side before rescaling (default: 256)")
    parser.add_argument("--max-size", type=int, default=1024,
                        help="largest image side before rescaling (default: 1024)")
    add_renamed(parser, "--workers", "--jobs", type=int, default=2, help="processes drawing figures (default: 2)")
    add_shared(parser, "seed", 0)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the generated folders and CSVs of a non-empty --output-dir")
    add_switches(parser, "progress")
    args = parser.parse_args(argv)
    from lib.data.demo import make_benchmark
    start = time.perf_counter()
    summary = make_benchmark(args.output_dir, n=args.n, seed=args.seed, test_fraction=args.test_fraction,
                             forged_fraction=args.forged_fraction, twin_fraction=args.twin_fraction,
                             min_size=args.min_size, max_size=args.max_size, workers=args.jobs,
                             overwrite=args.overwrite, progress=args.progress)
    texture = ", ".join(f"{k} {v}" for k, v in sorted(summary["texture"].items()))
    print(f"wrote {args.output_dir}: {summary['figures']} figures in {time.perf_counter() - start:.1f} s\n"
          f"  test      {summary['test']} images ({summary['test_forged']} forged), solution.csv\n"
          f"  train     {summary['train_images']} images ({summary['train_forged']} forged, the rest authentic "
          f"twins and authentic figures)\n"
          f"  events    {summary['events']} (copied-region texture: {texture})\n"
          f"  meta.csv, events.csv")
    return 0


if __name__ == "__main__":
    run(main)
