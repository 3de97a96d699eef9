#!/usr/bin/env python
"""How long each bin/ script takes to answer --help: the start-up a user waits through before
any work (imports above all), for this checkout and, with --against, another one.

    python bin/benchmark_startup.py                          # every script, best of 3
    git worktree add ../before <commit>                      # an earlier version, to compare
    python bin/benchmark_startup.py --against ../before      # both, in one run, with the ratio

Target: under 1 s for every script (heavy libraries are imported after the arguments are parsed).
"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.errors import ProjectError  # noqa: E402
from lib.paths import ROOT, add_path_args, resolve_paths  # noqa: E402

log = logging.getLogger("benchmark_startup")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--against", type=Path, default=None, metavar="DIR",
                        help="another checkout of this repository (e.g. a git worktree of an earlier commit)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per script; the best counts (default 3)")
    parser.add_argument("--script", action="append", default=None, metavar="NAME",
                        help="only this bin/ script (repeatable; default: all of this checkout's)")
    add_path_args(parser)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        raise ProjectError(f"--repeat {args.repeat}: must be at least 1")
    if args.against is not None and not (args.against / "bin").is_dir():
        raise ProjectError(f"{args.against}: not a checkout of this repository (no bin/ folder)")
    from lib.tools.benchmark import startup_seconds, startup_table

    log_file = setup_logging("benchmark_startup", resolve_paths(args).logs_dir)
    scripts = args.script or sorted(p.name for p in (ROOT / "bin").glob("*.py"))
    times = {}
    if args.against is not None:
        times[f"{args.against.name} (s)"] = startup_seconds(args.against, scripts, args.repeat)
    times["this checkout (s)"] = startup_seconds(ROOT, scripts, args.repeat)
    table = startup_table(times)
    log.info("python bin/<script> --help, best of %d (nan: missing or failed there):\n%s", args.repeat,
             table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"log: {log_file}")
    return 0


if __name__ == "__main__":
    run(main)
