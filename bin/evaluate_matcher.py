#!/usr/bin/env python
"""The matcher on a benchmark's test split: v1 (the cascade) beside v2 and v3 (the verifier) and
v3's ablations, by group, in one table; the verifiers' AUCs, v3's reliability diagrams (per
figure, and per candidate by size), its top features and its slowest figure; and, for v2 and v3,
where the forged figures' score goes (no good candidate, a good one dropped by the verifier, or
kept with one instance per event, extra instances, or fewer instances than events).

    python bin/make_benchmark.py --output-dir bench --n 1250
    python bin/evaluate_matcher.py --data-dir bench --leave-out blot --output-dir logs/matcher_eval
    python bin/evaluate_matcher.py --data-dir bench --candidates 100 --set dense_max_grid=512

With --candidates N it only measures the candidate stages and masks, to tune them on training
figures: the share of the true events of N forged training figures that some candidate covers
(pixel F1 >= 0.5, before any verifier), by group; --set changes a matcher parameter
(lib/matching/config.py, MatchConfig) for that run.

Every verifier here is fitted on the benchmark's training figures only (train_images, cached
matcher candidates under <models-dir>/cache) and judged once on its test_images against
solution.csv; meta.csv and events.csv give the groups. Writes <out-dir>/comparison.txt,
v3_reliability.png, v3_reliability_by_size.png and importance.csv.
"""
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run, setup_logging  # noqa: E402
from lib.fileio import atomic_write_text  # noqa: E402
from lib.flags import add_renamed  # noqa: E402
from lib.options import add_shared, add_switches  # noqa: E402
from lib.paths import add_path_args, require_benchmark, resolve_paths  # noqa: E402

log = logging.getLogger("evaluate_matcher")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    add_renamed(parser, "--out-dir", "--output-dir", type=Path, default=None,
                help="where the table and plots go (default: <logs-dir>/matcher_eval)")
    parser.add_argument("--leave-out", default=None,
                        help="also fit a verifier without the training figures of this content kind and judge it on "
                             "the test figures of that kind (e.g. blot)")
    parser.add_argument("--candidates", type=int, default=None, metavar="N",
                        help="only measure the candidates: events of N forged training figures that some "
                             "candidate covers, by group")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="with --candidates: a MatchConfig parameter for the run (repeatable), e.g. "
                             "dense_max_grid=512")
    add_shared(parser, "seed", 0)
    add_shared(parser, "match_workers", 2, "--workers")
    add_switches(parser, "progress")
    add_path_args(parser)
    args = parser.parse_args(argv)
    from lib.evaluation.matcher import compare_matchers, comparison_table
    paths = resolve_paths(args)
    if args.candidates is not None:
        return measure_candidates(paths, args)
    require_benchmark(paths, ("meta.csv", "solution.csv", "test_images"))
    out_dir = args.output_dir or paths.logs_dir / "matcher_eval"
    log_file = setup_logging("evaluate_matcher", paths.logs_dir)
    results = compare_matchers(paths, out_dir, args.leave_out, args.seed, args.match_workers, args.progress)
    lines = [comparison_table(results), "", "verifier AUCs (grouped out-of-fold on train / per figure on test):"]
    for name, result in results.items():
        if "oof_candidate_auc" in result:
            lines.append(f"  {name:<34} candidates {result['oof_candidate_auc']:.3f}  figures "
                         f"{result['oof_figure_auc']:.3f}  test figures {result['test_figure_auc']:.3f}  "
                         f"threshold {result['threshold']:.2f}")
    v3 = results["v3"]
    lines += ["", "where the forged test figures' score goes (figures, their mean score, the share of all forged "
              "figures' score lost):"]
    for name in ("v2", "v3"):
        losses = results[name]["losses"]
        lines += [f"  {name}: {losses['figures'].sum()} forged figures, mean score "
                  f"{(losses['figures'] * losses['score']).sum() / max(losses['figures'].sum(), 1):.3f}"]
        lines += [f"    {loss:<36} {int(row.figures):>4}  score {row.score:.3f}  lost {row.lost:.3f}"
                  for loss, row in losses.iterrows()]
    importance = v3["importance"]
    lines += ["", "v3's 10 most important features (drop of the test candidates' AUC when shuffled):"]
    lines += [f"  {name:<18} {value:.4f}" for name, value in importance.head(10).items()]
    name, (h, w), seconds = v3["slowest"]
    lines += ["", f"v3's slowest test figure: {name} ({w}x{h} px) in {seconds:.2f} s"]
    text = "\n".join(lines)
    atomic_write_text(out_dir / "comparison.txt", text + "\n")
    atomic_write_text(out_dir / "importance.csv", importance.rename("auc_drop").to_csv(index_label="feature"))
    log.info("matcher comparison on %s:\n%s", paths.data_dir, text)
    print(f"table: {out_dir / 'comparison.txt'}; reliability diagrams: {v3['diagram']}, {v3['size_diagram']}")
    print(f"log: {log_file}")
    return 0


def measure_candidates(paths, args) -> int:
    from lib.evaluation.groups import format_event_report
    from lib.evaluation.matcher import candidate_coverage, match_config
    config = match_config(args.set)
    require_benchmark(paths, ("meta.csv", "train_images"))
    log_file = setup_logging("evaluate_matcher", paths.logs_dir)
    report = candidate_coverage(paths, config, args.candidates, args.seed, args.match_workers, args.progress)
    total = report[report["column"] == report["column"].iloc[0]]
    log.info("candidates of %d forged training figures (%s): %d of %d events covered (%.3f)\n%s",
             args.candidates, " ".join(args.set) or "defaults", total["found"].sum(), total["events"].sum(),
             total["found"].sum() / max(total["events"].sum(), 1), format_event_report(report, "some candidate"))
    print(f"log: {log_file}")
    return 0


if __name__ == "__main__":
    run(main)
