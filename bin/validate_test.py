#!/usr/bin/env python
"""Score the pipeline on held-out images, and sweep its post-processing thresholds.

    python bin/validate_test.py                      # the held-out split of the training data
    python bin/validate_test.py --sweep              # + the 216-combination threshold grid
    python bin/validate_test.py --data-dir demo --input-dir demo/test_images --solution demo/solution.csv
    python bin/validate_test.py --compare-fusion     # networks, matcher, first, union side by side
    python bin/validate_test.py --fusion first --sweep   # + the matcher's threshold in the grid
    python bin/validate_test.py --fusion matcher --sweep # the copy-move matcher alone, no networks
    python bin/validate_test.py --fusion matcher --input-dir bench/test_images --solution bench/solution.csv \
        --meta bench/meta.csv                            # a benchmark's test split, by group

Reports the competition score (the exact metric) with TP / FP / TN / FN, recall, precision,
FP rate and net score, recall per forged-area bucket, and the three instance-forming modes.
The networks and the matcher run once (results cached under <models-dir>/cache); the sweep
re-runs only the post-processing and writes <logs-dir>/sweep_<time>.{csv,json,png}.

On the held-out split (not with --solution), what --sweep and --compare-fusion choose is written
to <models-dir>/postprocess.json, keyed by the checkpoints, the matcher and its verifier, and the
held-out images: what script_5_predict.py, make_kaggle_package.py and full_pipeline.py run by
default (--fusion auto), and what --fusion auto here scores (its key checked, the split too).
"""
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.errors import ProjectError  # noqa: E402
from lib.flags import from_args, given_dests  # noqa: E402
from lib.options import FUSIONS, PostConfig, PredictorOptions, add_inference_args  # noqa: E402
from lib.paths import add_path_args, resolve_paths  # noqa: E402

TOP_ROWS = 15
log = logging.getLogger("validate_test")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--sweep", action="store_true", help="sweep classifier x seg threshold x min_area")
    parser.add_argument("--solution", type=Path, default=None,
                        help="score the images of --input-dir against this solution CSV instead")
    parser.add_argument("--input-dir", type=Path, default=None, help="image folder for --solution")
    parser.add_argument("--compare-fusion", action="store_true",
                        help="also run the copy-move matcher and print the score of each fusion rule "
                             "(network, matcher, first, union) side by side")
    parser.add_argument("--all-images", action="store_true",
                        help="score every training-layout image of --data-dir, not only the held-out split "
                             "(for a folder the models never saw)")
    parser.add_argument("--meta", type=Path, default=None,
                        help="with --solution: a benchmark's meta.csv (events.csv beside it); also report by "
                             "figure and event group (bin/make_benchmark.py)")
    parser.add_argument("--gallery", type=Path, default=None,
                        help="with --solution: write DIR/index.html, the worst false negatives and false positives "
                             "outlined, with the matcher's debug pictures")
    parser.add_argument("--forged-share", type=float, default=None,
                        help="with --sweep: weigh forged images as this share of the images when choosing "
                             "thresholds (the test set may hold more forged images than the validation split)")
    add_inference_args(parser)
    add_path_args(parser)
    args = parser.parse_args(argv)
    import pandas as pd

    from lib.competition.metric import score_frame
    from lib.competition.submission import read_solution
    from lib.data.manifest import load_manifest
    from lib.data.split import load_or_make_split, split_rows
    from lib.data.truths import truths_from_manifest, truths_from_solution
    from lib.evaluation.evaluate import (best_config, bucket_recall, check_sweepable, compare_fusions,
                                         compare_instance_modes, evaluate, sweep, write_sweep)
    from lib.evaluation.gallery import write_gallery
    from lib.evaluation.groups import report_by_group
    from lib.inference.fusion import best_fusion, matcher_of
    from lib.inference.infer import (folder_images, models_key, post_and_tuning_from_args, predict_annotations,
                                     predict_paths)
    from lib.inference.tuned import check_tuned, write_tuned
    if args.forged_share is not None and not 0 < args.forged_share < 1:
        raise ProjectError(f"--forged-share {args.forged_share}: must lie in (0, 1)")
    if (args.meta is not None or args.gallery is not None) and args.solution is None:
        raise ProjectError("--meta and --gallery need --solution (and --input-dir): they report on a test split")
    paths = resolve_paths(args)
    log_file = setup_logging("validate_test", paths.logs_dir)
    config, tuned = post_and_tuning_from_args(args, paths.models_dir, given_dests(parser, argv))
    options = from_args(PredictorOptions, args)
    if args.sweep:
        check_sweepable(config)          # before any inference
    progress = args.progress

    if args.solution is not None:
        truths = truths_from_solution(args.solution, folder_images(args.input_dir or paths.test_images))
        source = f"{args.solution}"
    else:
        if args.input_dir is not None:
            raise ProjectError("--input-dir needs --solution (training-layout images are found from --data-dir)")
        manifest = load_manifest(paths, progress=progress)
        rows = manifest if args.all_images else split_rows(manifest, load_or_make_split(paths, manifest))[1]
        truths = truths_from_manifest(paths.data_dir, rows)
        source = f"{paths.data_dir} ({'all images' if args.all_images else 'held-out split'})"
    n_forged = sum(t.forged for t in truths)
    held_out = [t.case_id for t in truths] if args.solution is None else None
    if tuned is not None and held_out is not None:
        check_tuned(tuned, models_key(options, paths.models_dir, False, False, held_out))   # the same split
    log.info("scoring %d images of %s: %d forged, %d authentic", len(truths), source, n_forged,
             len(truths) - n_forged)

    started = time.perf_counter()
    results, described = predict_paths(options, paths.models_dir, [t.image_path for t in truths], config.fusion,
                                       gate=None, desc="validate", matcher=args.compare_fusion or None)
    inference_s = time.perf_counter() - started

    if args.sweep:
        started = time.perf_counter()
        table = sweep(results, truths, config, progress=progress,
                      forged_share=args.forged_share)
        sweep_s = time.perf_counter() - started
        stem = paths.logs_dir / log_file.stem.replace("validate_test", "sweep")
        written = write_sweep(table, stem, {"images": len(truths), "forged": n_forged, "source": source,
                                            "predictor": described, "matcher": args.matcher,
                                            "adaptive": config.adaptive,
                                            "forged_share": args.forged_share,
                                            "inference_seconds": inference_s, "sweep_seconds": sweep_s})
        shown = table.head(TOP_ROWS).dropna(axis=1, how="all").copy()
        shown.insert(0, "best", ["*" if i == 0 else "" for i in range(len(shown))])
        log.info("sweep: %d combinations (fusion %s, instances 'all'), top %d by competition score:\n%s",
                 len(table), config.fusion, len(shown),
                 shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        log.info("inference %.1fs (0 when cached), sweep %.2fs (%.1f%% of the inference); written: %s",
                 inference_s, sweep_s, 100 * sweep_s / max(inference_s, 1e-9), ", ".join(map(str, written)))
        config = best_config(table, config)

    report, frame = evaluate(results, truths, config, progress)
    chosen = None
    if args.compare_fusion:
        fusions = FUSIONS if config.fusion != "matcher" else ("matcher",)
        table = compare_fusions(results, truths, config, fusions)
        log.info("fusion rules at %s:\n%s", PostConfig(**{**config.as_dict(), "fusion": "first"}).summary(),
                 table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        best = best_fusion(table)
        chosen = (PostConfig(**{**config.as_dict(), "fusion": best}),
                  float(table.loc[table["fusion"] == best, "score"].iloc[0]))
    elif args.sweep:
        chosen = config, report.score
    if chosen is not None and held_out is not None:      # the held-out split chooses; a test set never does
        post, score = chosen
        networks, matcher = config.fusion != "matcher", config.fusion != "network" or args.compare_fusion   # ran
        how = "validate_test.py" + " --sweep" * args.sweep + " --compare-fusion" * args.compare_fusion
        written = write_tuned(paths.models_dir, models_key(options, paths.models_dir, networks, matcher, held_out),
                              post, {"how": how, "score": score, "images": len(truths), "forged": n_forged,
                                     "source": source, "predictor": described})
        log.info("the held-out split chooses %s (score %.4f): written to %s, what --fusion auto runs for these "
                 "models", post.summary(), score, written)
    modes = compare_instance_modes(results, truths, config) if config.fusion == "network" else None
    log.info("at %s:\n  competition score %.4f\n  TP %d  FP %d  TN %d  FN %d | recall %.3f | precision %.3f | "
             "FP rate %.3f | net %+d | mask F1 (TP rows) %.3f\nrecall per forged-area bucket:\n%s\n"
             "%s", config.summary(), report.score, report.tp, report.fp,
             report.tn, report.fn, report.recall, report.precision, report.fp_rate, report.net, report.mask_f1,
             bucket_recall(frame).to_string(index=False, float_format=lambda v: f"{v:.3f}"),
             "" if modes is None else "instance forming at these thresholds:\n"
             + modes.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if args.meta is not None or args.gallery is not None:
        submission = pd.DataFrame(list(predict_annotations(results, config).items()), columns=["case_id", "annotation"])
        solution = read_solution(args.solution)
        _, rows = score_frame(solution[solution["case_id"].isin(submission["case_id"])], submission)
        if args.meta is not None:
            log.info("at %s, by group:\n%s", config.summary(), report_by_group(rows, args.meta))
        if args.gallery is not None:
            match_config, verifier, _ = matcher_of(options, paths.models_dir)   # the pictures: this matcher
            index = write_gallery(rows, args.input_dir or paths.test_images, args.gallery, args.meta,
                                  match_config=match_config, verifier=verifier)
            print(f"gallery: {index}")
    print(f"log: {log_file}")
    return 0


if __name__ == "__main__":
    run(main)
