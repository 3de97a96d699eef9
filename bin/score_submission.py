#!/usr/bin/env python
"""Score a submission against a solution with the competition metric, and show the detection numbers.

    python bin/score_submission.py demo/sample_submission.csv --solution demo/solution.csv
    python bin/score_submission.py m.csv --solution bench/solution.csv --meta bench/meta.csv   # by group
    python bin/score_submission.py m.csv --solution bench/solution.csv --gallery logs/gallery   # failures, in a browser
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib.cli import make_parser, run  # noqa: E402
from lib.errors import SubmissionError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__)
    parser.add_argument("submission", type=Path, help="submission CSV (case_id,annotation)")
    parser.add_argument("--solution", type=Path, required=True,
                        help="solution CSV (case_id,annotation,shape), e.g. demo/solution.csv")
    parser.add_argument("--per-row", type=Path, default=None,
                        help="also write each row's score to this CSV")
    parser.add_argument("--meta", type=Path, default=None,
                        help="a benchmark's meta.csv (events.csv beside it): also report by figure and event group")
    parser.add_argument("--gallery", type=Path, default=None,
                        help="write DIR/index.html: the worst false negatives and false positives, outlined, with "
                             "the matcher's debug pictures")
    parser.add_argument("--images", type=Path, default=None,
                        help="the scored images, for --gallery (default: test_images beside the solution)")
    args = parser.parse_args(argv)
    from lib.competition.metric import AUTHENTIC, score_frame
    from lib.competition.submission import read_solution, read_submission, solution_shapes, validate_frame, write_csv
    from lib.evaluation.gallery import write_gallery
    from lib.evaluation.groups import report_by_group

    solution, submission = read_solution(args.solution), read_submission(args.submission, allow_extra=True)
    # the metric never decodes a prediction on an authentic truth row: validate every row first
    shapes = {cid: None for cid in solution["case_id"]} | solution_shapes(solution)
    problems = [p for p in validate_frame(submission, shapes) if "no row" not in p and "not a test image" not in p]
    if problems:
        more = f" (and {len(problems) - 1} more; check_submission.py lists them)" if len(problems) > 1 else ""
        raise SubmissionError(f"{args.submission}: {problems[0]}{more}")
    report, rows = score_frame(solution, submission)
    if args.per_row is not None:
        write_csv(args.per_row, ["case_id", "truth", "prediction", "score"],
                  ((c, AUTHENTIC if t == AUTHENTIC else "forged",
                    AUTHENTIC if p == AUTHENTIC else "forged", f"{s:.6f}")
                   for c, t, p, s in zip(rows["case_id"], rows["annotation"],
                                         rows["prediction"], rows["score"])))
    print(report.summary())
    print(f"image level: TP {report.tp}  FP {report.fp}  FN {report.fn}  TN {report.tn}")
    if args.meta is not None:
        print(report_by_group(rows, args.meta))
    if args.gallery is not None:
        images = args.images or args.solution.parent / "test_images"
        print(f"gallery: {write_gallery(rows, images, args.gallery, args.meta)}")
    return 0


if __name__ == "__main__":
    run(main)
