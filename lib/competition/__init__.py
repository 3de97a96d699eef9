"""The competition's rules as code, exactly: run-length encoding of instance masks (rle),
the score (metric: per-row authentic rule, Hungarian-matched instance F1 with the penalty for
extra predictions), and submission.csv (submission: building, writing atomically, reading and
validating it). Nothing here knows about networks or the matcher; docs/competition.md states
the rules these modules implement."""
