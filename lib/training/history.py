"""A training run seen while it trains: `<run>_history.csv` and `<run>_curves.png` beside its
checkpoints, rewritten after every epoch (a resumed run carries its history in its resume state,
so both files continue), and with `--tensorboard` TensorBoard event files under
`<logs-dir>/tensorboard/<run>/`, the viewer competitors already use.

The curves show what a run has to beat: the score of answering `authentic` for every validation
image (the authentic fraction of the split), or an AUC of 0.5 for the classifier. A network that
has not learned the task sits on that line.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..errors import ProjectError
from ..fileio import atomic_path

log = logging.getLogger(__name__)

# the CSV's columns in this order (those a task does not measure are left out)
COLUMNS = ("epoch", "train_loss", "val_loss", "score", "recall", "fp_rate", "precision", "pixel_f1", "image_auc",
           "auc", "accuracy", "baseline", "lr", "seconds")
TENSORBOARD_DIR = "tensorboard"


def history_paths(models_dir: Path, run_name: str) -> tuple[Path, Path]:
    """(`<run>_history.csv`, `<run>_curves.png`) in the models dir."""
    return Path(models_dir) / f"{run_name}_history.csv", Path(models_dir) / f"{run_name}_curves.png"


def history_frame(history: Sequence[dict], baseline: float) -> pd.DataFrame:
    """The history as a table, one row per epoch, with the baseline score as a column."""
    frame = pd.DataFrame(list(history)).assign(baseline=baseline)
    return frame[[c for c in COLUMNS if c in frame.columns]]


def write_history(models_dir: Path, run_name: str, history: Sequence[dict], baseline: float,
                  measure: str = "score") -> tuple[Path, Path]:
    """Write the run's history CSV and curves PNG (atomically); returns their paths."""
    csv_path, png_path = history_paths(models_dir, run_name)
    frame = history_frame(history, baseline)
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    plot_curves(frame, png_path, run_name, measure)
    return csv_path, png_path


def plot_curves(frame: pd.DataFrame, path: Path, title: str, measure: str = "score") -> None:
    """Losses on the left; the validation score (and recall, FP rate where measured) on the right,
    with the baseline dashed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = frame["epoch"]
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for column, style in (("train_loss", "o-"), ("val_loss", "s-")):
        if column in frame:
            loss_ax.plot(epochs, frame[column], style, ms=3, label=column.replace("_", " "))
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_ax.legend()
    score_ax.plot(epochs, frame["score"], "o-", ms=5, color="tab:red", lw=2.5, label=f"val {measure}", zorder=4)
    # each its own colour, marker and dash, and the thin lines drawn over the thick: none hides another
    # (an FP rate of 0 used to lie under a pixel F1 of 0)
    others = (("recall", "recall", "tab:blue", "s", "-"), ("fp_rate", "FP rate", "tab:orange", "^", "--"),
              ("pixel_f1", "pixel F1", "tab:green", "D", ":"),
              ("image_auc", "image AUC (chance 0.5)", "tab:purple", "v", "-."))
    for order, (column, label, color, marker, dash) in enumerate(others):
        if column in frame:
            score_ax.plot(epochs, frame[column], marker=marker, ls=dash, color=color, lw=1.2, ms=6 - order,
                          mfc="none", label=label, zorder=5 + order)
    baseline = float(frame["baseline"].iloc[0])
    what = "answering authentic" if measure == "score" else "chance"
    # drawn over the score: a run that has not learned lies exactly on it
    score_ax.axhline(baseline, color="black", ls="--", lw=1, zorder=10, label=f"{what} ({baseline:.3f})")
    score_ax.set(xlabel="epoch", ylim=(-0.02, 1.02), title=f"validation {measure}")
    score_ax.legend(fontsize=8, loc="best")
    for ax in (loss_ax, score_ax):
        ax.grid(alpha=0.3)
        if len(epochs) < 15:
            ax.set_xticks(list(epochs))
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


class TensorBoard:
    """Scalars of each epoch as TensorBoard events under `<logs_dir>/tensorboard/<run>/`, or nothing
    when not enabled. Enabled without the tensorboard package installed is a one-line error."""

    def __init__(self, logs_dir: Path, run_name: str, enabled: bool):
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ProjectError("--tensorboard needs the tensorboard package: pip install tensorboard (or leave "
                               "out --tensorboard; the history CSV and curves PNG are written anyway)") from None
        self.folder = Path(logs_dir) / TENSORBOARD_DIR / run_name
        self.writer = SummaryWriter(log_dir=str(self.folder))
        log.info("TensorBoard events in %s (tensorboard --logdir %s)", self.folder, self.folder.parent)

    def log(self, entry: dict) -> None:
        if self.writer is None:
            return
        for key, value in entry.items():
            if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(key, value, global_step=int(entry["epoch"]))
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
