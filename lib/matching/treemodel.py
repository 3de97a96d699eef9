"""A fitted binary HistGradientBoostingClassifier as plain JSON, and a numpy evaluator for it.

Loading a model file must never run code (no pickle, no joblib) and the Kaggle predictor must not
need scikit-learn, so `export_hgb` copies the fitted trees into lists of numbers and
`predict_proba_json` walks them with numpy, giving `model.predict_proba(X)[:, 1]` exactly.

The evaluator copies scikit-learn's rule (`_predictor.pyx`, `_predict_one_from_raw_data`):
NaN goes to the child named by `missing_go_to_left`, any other value goes left when
`x <= threshold`. Two scikit-learn details this relies on:
- a feature without NaN in training still has a `missing_go_to_left`: the child that got more
  training samples (the right one on a tie);
- a threshold of +inf is a "split on NaN": every number, +inf included, goes left, NaN right.
Python's json writes +inf as `Infinity` and reads it back; thresholds are otherwise finite.
"""
from __future__ import annotations

import numpy as np

TREEMODEL_FORMAT = "recodai-hgb/1"
# Deeper than any tree worth shipping; it bounds the evaluator's work on a crafted file.
MAX_DEPTH = 256
MODEL_KEYS = {"format", "n_features", "classes", "baseline", "trees", "meta"}
# column name -> element type: ints and bools are checked apart because json has both
TREE_COLUMNS = {"feature": "int", "threshold": "float", "left": "int", "right": "int",
                "value": "float", "missing_go_to_left": "bool", "is_leaf": "bool"}


def export_hgb(model, meta: dict | None = None) -> dict:
    """Copy a fitted binary HistGradientBoostingClassifier into a JSON-able dict.

    Returns a dict that `predict_proba_json` evaluates to `model.predict_proba(X)[:, 1]`.
    Raises ValueError for models the format cannot reproduce exactly.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    if not isinstance(model, HistGradientBoostingClassifier):
        raise ValueError("export_hgb: expected a HistGradientBoostingClassifier, "
                         f"got {type(model).__name__}")
    if not hasattr(model, "_predictors"):
        raise ValueError("export_hgb: the model is not fitted")
    if model.n_trees_per_iteration_ != 1:
        raise ValueError(f"export_hgb: only binary classifiers are supported, this one has "
                         f"{len(model.classes_)} classes")
    if model.is_categorical_ is not None and np.any(model.is_categorical_):
        raise ValueError("export_hgb: categorical features are not supported "
                         "(their splits use bitsets)")
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise ValueError("export_hgb: a tree has a categorical split, which is not supported")
        trees.append({"feature": nodes["feature_idx"].tolist(),
                      "threshold": nodes["num_threshold"].tolist(),
                      "left": nodes["left"].tolist(), "right": nodes["right"].tolist(),
                      "value": nodes["value"].tolist(),
                      "missing_go_to_left": nodes["missing_go_to_left"].astype(bool).tolist(),
                      "is_leaf": nodes["is_leaf"].astype(bool).tolist()})
    return {"format": TREEMODEL_FORMAT, "n_features": int(model.n_features_in_),
            "classes": model.classes_.tolist(),
            "baseline": float(np.asarray(model._baseline_prediction).reshape(-1)[0]),
            "trees": trees, "meta": dict(meta or {})}


# The bound keeps numpy's int64/float64 conversion from overflowing on a crafted huge integer.
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**53


def _is_float(v) -> bool:
    return isinstance(v, float) or _is_int(v)


def _column(tree: dict, key: str, n: int, where: str) -> np.ndarray:
    values = tree[key]
    if not isinstance(values, list) or len(values) != n:
        raise ValueError(f"{where}: '{key}' must be a list as long as 'is_leaf' ({n})")
    kind = TREE_COLUMNS[key]
    check = {"int": _is_int, "float": _is_float, "bool": lambda v: isinstance(v, bool)}[kind]
    bad = [v for v in values if not check(v)]
    if bad:
        raise ValueError(f"{where}: '{key}' holds {bad[0]!r}, expected {kind} values")
    return np.array(values, dtype={"int": np.int64, "float": np.float64, "bool": bool}[kind])


def _tree_arrays(tree, n_features: int, where: str) -> dict:
    if not isinstance(tree, dict) or set(tree) != set(TREE_COLUMNS):
        found = sorted(map(str, tree)) if isinstance(tree, dict) else type(tree).__name__
        raise ValueError(f"{where}: a tree must have keys {sorted(TREE_COLUMNS)}, got {found}")
    n = len(tree["is_leaf"]) if isinstance(tree["is_leaf"], list) else -1
    if n < 1:
        raise ValueError(f"{where}: 'is_leaf' must be a non-empty list")
    t = {key: _column(tree, key, n, where) for key in TREE_COLUMNS}
    if (t["feature"] < 0).any() or (t["feature"] >= n_features).any():
        raise ValueError(f"{where}: feature index out of range 0..{n_features - 1}")
    split = np.flatnonzero(~t["is_leaf"])
    left, right, thr = t["left"][split], t["right"][split], t["threshold"][split]
    kids = np.concatenate([left, right])
    if ((kids < 0) | (kids >= n)).any():
        raise ValueError(f"{where}: child index out of range 0..{n - 1}")
    if (left <= split).any() or (right <= split).any():
        raise ValueError(f"{where}: a child index is not greater than its parent's (a cycle)")
    # Together with forward children this makes the nodes one tree rooted at node 0.
    if not np.array_equal(np.sort(kids), np.arange(1, n)):
        raise ValueError(f"{where}: every node but the root must be the child of exactly one node")
    if np.isnan(t["threshold"]).any() or np.isneginf(t["threshold"]).any():
        raise ValueError(f"{where}: thresholds must be numbers, not NaN or -inf")
    inf_leaf = np.isposinf(t["threshold"][t["is_leaf"]]).any()
    if inf_leaf or (np.isposinf(thr) & t["missing_go_to_left"][split]).any():
        raise ValueError(f"{where}: a +inf threshold is only valid on a split that sends NaN right")
    if not np.isfinite(t["value"]).all():
        raise ValueError(f"{where}: node values must be finite")
    level = np.zeros(1, dtype=np.int64)
    for _ in range(MAX_DEPTH + 1):
        level = level[~t["is_leaf"][level]]
        if not level.size:
            break
        level = np.concatenate([t["left"][level], t["right"][level]])
    else:
        raise ValueError(f"{where}: a tree is deeper than {MAX_DEPTH}")
    return t


def _arrays(model, where: str) -> tuple[int, float, list[dict]]:
    if not isinstance(model, dict):
        raise ValueError(f"{where}: a model must be a JSON object, got {type(model).__name__}")
    if set(model) != MODEL_KEYS:
        missing, extra = sorted(MODEL_KEYS - set(model)), sorted(set(model) - MODEL_KEYS)
        raise ValueError(f"{where}: missing keys {missing}, unexpected keys {extra}")
    if model["format"] != TREEMODEL_FORMAT:
        raise ValueError(f"{where}: format {model['format']!r} is not {TREEMODEL_FORMAT!r}")
    n_features, baseline, classes = model["n_features"], model["baseline"], model["classes"]
    if not _is_int(n_features) or n_features < 1:
        raise ValueError(f"{where}: 'n_features' must be a positive integer, got {n_features!r}")
    if not _is_float(baseline) or not np.isfinite(baseline):
        raise ValueError(f"{where}: 'baseline' must be a finite number, got {baseline!r}")
    # One class happens when the training target is constant: sklearn still predicts two columns.
    if not isinstance(classes, list) or len(classes) not in (1, 2):
        raise ValueError(f"{where}: 'classes' must be a list of one or two labels")
    if not isinstance(model["meta"], dict):
        raise ValueError(f"{where}: 'meta' must be a JSON object")
    if not isinstance(model["trees"], list) or not model["trees"]:
        raise ValueError(f"{where}: 'trees' must be a non-empty list")
    trees = [_tree_arrays(tree, n_features, f"{where}: tree {i}")
             for i, tree in enumerate(model["trees"])]
    return n_features, float(baseline), trees


def validate_model(model: dict, where: str) -> None:
    """Check a loaded model dict strictly; raises ValueError("<where>: <problem>") if unusable."""
    _arrays(model, where)


def parse_model(model: dict, where: str) -> tuple[int, float, list[dict]]:
    """The validated model as arrays, for predict_parsed (validation costs more than a
    prediction: a caller that predicts often parses once)."""
    return _arrays(model, where)


def predict_proba_json(model: dict, X: np.ndarray) -> np.ndarray:
    """Probability of the second class for each row of X (n_rows, n_features), float64.

    Validates the model first, so a crafted file fails with ValueError instead of misbehaving.
    """
    return predict_parsed(_arrays(model, "model"), X)


def predict_parsed(parsed: tuple[int, float, list[dict]], X: np.ndarray) -> np.ndarray:
    """predict_proba_json for a model parse_model has validated."""
    n_features, baseline, trees = parsed
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"X must have shape (n_rows, {n_features}), got {X.shape}")
    rows = np.arange(X.shape[0])
    raw = np.full(X.shape[0], baseline)
    # Trees are added in order onto the baseline, as sklearn does, so the sums agree bitwise.
    for t in trees:
        node = np.zeros(X.shape[0], dtype=np.int64)
        while not (done := t["is_leaf"][node]).all():
            x = X[rows, t["feature"][node]]
            below = x <= t["threshold"][node]
            go_left = np.where(np.isnan(x), t["missing_go_to_left"][node], below)
            node = np.where(done, node, np.where(go_left, t["left"][node], t["right"][node]))
        raw += t["value"][node]
    # exp of -|raw| cannot overflow, unlike 1 / (1 + exp(-raw)) for very negative raw.
    e = np.exp(-np.abs(raw))
    return np.where(raw >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
