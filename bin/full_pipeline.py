#!/usr/bin/env python
"""The whole pipeline: train, mine hard negatives, retrain, predict -> submission.csv.

    python bin/full_pipeline.py --demo                    # every phase on the synthetic demo data (CPU, minutes)
    python bin/full_pipeline.py                           # every phase on the Kaggle data (GPU, hours)
    python bin/full_pipeline.py --phase 2                 # one phase (repeatable: --phase 1 --phase 4, or 1,4)
    python bin/full_pipeline.py --skip-retrain            # phases 1-2 ("day 1")
    python bin/full_pipeline.py --skip-initial --skip-mining   # phases 3-4 ("day 2")
    python bin/full_pipeline.py --inference-only --seg-threshold 0.30
    python bin/full_pipeline.py --dry-run                 # the plan and the commands, nothing run

Phases: 0 augmented data (with --augment), 1 initial training (five v3 segmentation
variants, the classifier), 2 hard-negative mining, 3 retraining with the hard negatives (v4,
classifier, small-forgery specialist), 4 inference. Each step is a bin/ script run as a
subprocess with the flags shown in the log, so any step can be re-run by hand. The log goes
to the console and <logs-dir>/full_pipeline_<time>.log.
"""
import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.errors import ProjectError  # noqa: E402
from lib.flags import add_args, add_renamed, from_args, to_argv  # noqa: E402
from lib.imageio import list_images  # noqa: E402
from lib.options import AUTO, PostConfig, PredictorOptions, TrainOptions  # noqa: E402
from lib.paths import ROOT, add_path_args, resolve_paths  # noqa: E402
from lib.tools.pipeline import (PHASES, PhaseResult, banner, build_plan, continue_command, duration,  # noqa: E402
                                execute, input_problems, parse_phases, relative, select_phases, summary_table)

log = logging.getLogger("full_pipeline")
DEMO_DIR = ROOT / "demo"
# CPU-sized settings of --demo: the whole run in minutes on 2 cores
DEMO_TRAINING = {"epochs": 1, "img_size": 128, "batch_size": 4, "encoder_weights": "none"}
# the training flags the pipeline passes on (with --device), and the thresholds of mining and inference
PIPELINE_TRAINING = ("epochs", "img_size", "batch_size", "encoder_weights", "seed", "overwrite")
PIPELINE_POST = ("classifier_threshold", "seg_threshold", "min_area", "fusion")
DOWNLOAD = ("no Kaggle data in {data}: download it with\n"
            "  kaggle competitions download -c recodai-luc-scientific-image-forgery-detection\n"
            "  unzip recodai-luc-scientific-image-forgery-detection.zip   # at the repository root\n"
            "or try everything on synthetic data first: python bin/full_pipeline.py --demo")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = make_parser(__doc__)
    flow = parser.add_argument_group("phases")
    flow.add_argument("--phase", action="append", default=None, metavar="N",
                      help=f"run only these phases ({', '.join(f'{k} {v}' for k, v in PHASES.items())}); "
                           f"repeatable or comma-separated")
    flow.add_argument("--skip-initial", action="store_true", help="skip phase 1 (models exist)")
    flow.add_argument("--skip-mining", action="store_true", help="skip phase 2")
    flow.add_argument("--skip-retrain", action="store_true", help="stop after phase 2 (phases 3-4 later)")
    flow.add_argument("--inference-only", action="store_true", help="phase 4 only")
    flow.add_argument("--augment", action="store_true", help="also run phase 0 (augmented copies of the data)")
    flow.add_argument("--demo", action="store_true",
                      help="run on the synthetic data in demo/ (made if missing) with CPU-sized settings "
                           "(1 epoch at 128 px, no ImageNet weights); models, logs and the "
                           "submission stay under demo/, and the submission is scored")
    flow.add_argument("--dry-run", action="store_true", help="print the plan and the commands, run nothing")
    data = parser.add_argument_group("data and outputs")
    add_renamed(data, "--test-dir", "--input-dir", type=Path, default=None,
                help="images to predict (default <data-dir>/test_images)")
    data.add_argument("--authentic-dir", type=Path, default=None,
                      help="mine this folder of authentic images instead of the training split's")
    data.add_argument("--output-dir", type=Path, default=None,
                      help="where submission.csv goes (default: the repository root; demo/ with --demo)")
    add_args(TrainOptions, parser, "training (passed to the training scripts; default: each variant's)",
             only=PIPELINE_TRAINING)
    add_args(PredictorOptions, parser, only=("device",))       # training, mining and inference
    add_args(PostConfig, parser, "thresholds (mining and inference)", only=PIPELINE_POST, defaults={"fusion": AUTO})
    add_path_args(parser)
    args = parser.parse_args(argv)
    if args.demo:      # CPU-sized training where the command line does not say otherwise
        parser.set_defaults(**DEMO_TRAINING)
        args = parser.parse_args(argv)
    try:
        args.phases = parse_phases(args.phase)
        args.post = from_args(PostConfig, args, fusion="network" if args.fusion == AUTO else args.fusion)
        args.training = from_args(TrainOptions, args, overwrite=args.overwrite or args.demo)
    except ValueError as exc:
        raise ProjectError(str(exc)) from None
    return args


def demo_setup(args: argparse.Namespace) -> None:
    """Point every folder at demo/, make the demo data if it is missing, shrink the training."""
    from lib.data.demo import format_summary, make_demo_dataset

    args.data_dir = args.data_dir or DEMO_DIR
    args.models_dir = args.models_dir or args.data_dir / "models"
    args.logs_dir = args.logs_dir or args.data_dir / "logs"
    args.output_dir = args.output_dir or args.data_dir
    if not (Path(args.data_dir) / "solution.csv").is_file() and not args.dry_run:
        print(f"making the demo data in {relative(args.data_dir)} ...", flush=True)
        started = time.perf_counter()
        summary = make_demo_dataset(args.data_dir, progress=False)
        print(format_summary(summary, relative(args.data_dir), time.perf_counter() - started), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.demo:
        demo_setup(args)
    paths = resolve_paths(args)
    test_dir = (args.input_dir or paths.test_images).resolve()
    output = (args.output_dir or ROOT).resolve() / "submission.csv"
    phases = select_phases(args.phases, args.skip_initial, args.skip_mining, args.skip_retrain,
                           args.inference_only, args.augment)
    if not phases:
        raise ProjectError("the skip flags leave no phase to run")
    if not (args.demo or args.dry_run) and not list_images(paths.train_images, recursive=True) \
            and not list_images(test_dir):
        raise ProjectError(DOWNLOAD.format(data=paths.data_dir))
    log_file = setup_logging("full_pipeline", paths.logs_dir)

    common = ["--data-dir", relative(paths.data_dir), "--models-dir", relative(paths.models_dir),
              "--logs-dir", relative(paths.logs_dir), "--no-progress"]
    train = to_argv(args.training, only=(*PIPELINE_TRAINING, "device"))
    device = to_argv(args.training, only=("device",))
    thresholds = to_argv(args.post, only=[name for name in PIPELINE_POST if name != "fusion"])
    plan = build_plan(phases, common, train, thresholds, args.fusion, test_dir, output, args.authentic_dir, device)

    banner("FULL TRAINING PIPELINE WITH HARD NEGATIVE MINING" + (" (demo)" if args.demo else ""))
    log.info("Project directory: %s", ROOT)
    log.info("Data: %s | models: %s | logs: %s", paths.data_dir, paths.models_dir, paths.logs_dir)
    log.info("Phases: %s%s", ", ".join(f"{p} {PHASES[p]}" for p in phases), " (dry run)" if args.dry_run else "")
    started = time.perf_counter()
    checks = input_problems(phases, paths.data_dir, paths.models_dir, test_dir, args.fusion)
    results, failed = execute(plan, stop_on_failure=args.phases is None, checks=checks, dry_run=args.dry_run)

    banner("SUMMARY")
    stopped = [r for r in results if r.status == "interrupted"]
    if stopped:      # Ctrl-C: what finished, and the command that goes on from the interrupted phase
        results += [PhaseResult(phase) for phase in plan if phase not in {r.phase for r in results}]
        log.info("\n%s", summary_table(results))
        later = [phase for phase in plan if phase >= stopped[0].phase]
        command = continue_command(sys.argv[1:] if argv is None else argv, later)
        log.warning("interrupted during phase %d (%s); the log ends here: %s", stopped[0].phase,
                    stopped[0].note, log_file)
        print(f"interrupted during phase {stopped[0].phase}; to go on from there:\n  {command}", file=sys.stderr)
        return 130
    log.info("\n%s", summary_table(results))
    log.info("Total time %s; log %s", duration(time.perf_counter() - started), log_file)
    if args.demo and 4 in plan and not args.dry_run and output.is_file():
        from lib.competition.metric import score_frame
        from lib.competition.submission import read_solution, read_submission

        report, _ = score_frame(read_solution(paths.data_dir / "solution.csv"), read_submission(output))
        log.info("demo submission %s against %s: %s", output, paths.data_dir / "solution.csv", report.summary())
        print(f"demo score {report.score:.4f} ({relative(output)} against {relative(paths.data_dir / 'solution.csv')})")
    if failed:
        failures = [r for r in results if r.status == "failed"]
        print(f"error: phase {', '.join(str(r.phase) for r in failures)} failed; see {log_file}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run(main)
