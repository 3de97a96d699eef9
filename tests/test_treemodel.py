"""lib.matching.treemodel: JSON export of HistGradientBoostingClassifier and its numpy evaluator."""
import copy
import json

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from lib.matching.treemodel import MAX_DEPTH, TREEMODEL_FORMAT, export_hgb, predict_proba_json, validate_model

WHERE = "models/gbm.json"


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    # On a busy 2-core machine sklearn's OpenMP threads spin against each other: a 50 ms fit
    # took 10 s. These models are tiny, one thread is plenty.
    with threadpool_limits(1, user_api="openmp"):
        yield


def make_data(seed: int, n: int, nan_rate: float):
    rs = np.random.RandomState(seed)
    X = rs.randn(n, 4)
    X[:, 3] = np.round(X[:, 3])  # few values, so no bin of numbers is small enough to join NaN
    logit = 2 * X[:, 0] - X[:, 1] + X[:, 2] * X[:, 3]
    if nan_rate:
        # NaN in a weak feature carries a strong signal of its own, so sklearn learns splits
        # that separate NaN from every number (threshold +inf).
        missing = rs.rand(n) < nan_rate
        X[missing, 3] = np.nan
        logit[missing] = 3.0
    y = (logit + 0.5 * rs.randn(n) > 0).astype(int)
    return X, y


def held_out():
    X, _ = make_data(99, 300, nan_rate=0.0)
    X[::5, 0] = np.nan
    X[1::7, 1] = np.nan
    X[2::11] = np.nan
    X[3::13, 0] = np.inf
    X[4::13, 2] = -np.inf
    X[5::13, 3] = np.inf
    return X


def round_trip(model: dict) -> dict:
    return json.loads(json.dumps(model))


def nan_rows_depend_on_routing(exported: dict, X: np.ndarray) -> bool:
    flipped = copy.deepcopy(exported)
    for tree in flipped["trees"]:
        # A +inf threshold must send NaN right (validate_model insists), so those stay.
        pairs = zip(tree["missing_go_to_left"], tree["threshold"])
        tree["missing_go_to_left"] = [v if thr == np.inf else not v for v, thr in pairs]
    nan_rows = np.isnan(X).any(axis=1)
    diff = predict_proba_json(flipped, X) != predict_proba_json(exported, X)
    return bool(diff[nan_rows].any()) and not diff[~nan_rows].any()


@pytest.mark.parametrize("nan_rate, early_stopping", [(0.0, False), (0.3, False), (0.3, True)])
def test_json_evaluator_equals_sklearn(nan_rate, early_stopping):
    X, y = make_data(0, 600, nan_rate)
    clf = HistGradientBoostingClassifier(max_iter=40, early_stopping=early_stopping,
                                         validation_fraction=0.2, n_iter_no_change=3,
                                         random_state=0).fit(X, y)
    exported = round_trip(export_hgb(clf, meta={"features": ["a", "b", "c", "d"]}))
    validate_model(exported, WHERE)
    assert exported["format"] == TREEMODEL_FORMAT and exported["classes"] == [0, 1]
    assert exported["meta"] == {"features": ["a", "b", "c", "d"]}
    assert len(exported["trees"]) == clf.n_iter_
    X_test = held_out()
    # Rows sitting exactly on a root threshold check that x <= threshold goes left.
    for row, tree in zip(range(6, len(X_test), 13), exported["trees"]):
        if not tree["is_leaf"][0] and np.isfinite(tree["threshold"][0]):
            X_test[row, tree["feature"][0]] = tree["threshold"][0]
    np.testing.assert_allclose(predict_proba_json(exported, X_test),
                               clf.predict_proba(X_test)[:, 1], rtol=0, atol=1e-9)
    # The NaN rows above must exercise missing_go_to_left, or the comparison proves nothing.
    assert nan_rows_depend_on_routing(exported, X_test)
    if nan_rate:
        # and the +inf rows the "split on NaN" threshold, where +inf <= +inf goes left
        assert any(np.isinf(t["threshold"]).any() for t in exported["trees"])


def test_single_leaf_tree_and_constant_target():
    X, y = make_data(1, 200, nan_rate=0.0)
    X_test = held_out()
    stump = HistGradientBoostingClassifier(max_iter=1, min_samples_leaf=150).fit(X, y)
    exported = round_trip(export_hgb(stump))
    assert [len(t["is_leaf"]) for t in exported["trees"]] == [1]
    np.testing.assert_allclose(predict_proba_json(exported, X_test),
                               stump.predict_proba(X_test)[:, 1], rtol=0, atol=1e-9)
    # sklearn fits a constant target with classes_ == [0] and still predicts two columns.
    const = HistGradientBoostingClassifier(max_iter=3).fit(X, np.zeros(len(X), int))
    exported = round_trip(export_hgb(const))
    assert exported["classes"] == [0]
    np.testing.assert_allclose(predict_proba_json(exported, X_test),
                               const.predict_proba(X_test)[:, 1], rtol=0, atol=1e-9)


def test_export_refuses_what_it_cannot_represent():
    X, y = make_data(2, 300, nan_rate=0.0)
    multi = HistGradientBoostingClassifier(max_iter=3).fit(X, y + (X[:, 1] > 1))
    with pytest.raises(ValueError, match="only binary classifiers.*3 classes"):
        export_hgb(multi)
    X_cat = X.copy()
    X_cat[:, 3] = np.random.RandomState(0).randint(0, 4, len(X))
    cat = HistGradientBoostingClassifier(max_iter=3, categorical_features=[3]).fit(X_cat, y)
    with pytest.raises(ValueError, match="categorical features are not supported"):
        export_hgb(cat)
    with pytest.raises(ValueError, match="not fitted"):
        export_hgb(HistGradientBoostingClassifier())
    with pytest.raises(ValueError, match="expected a HistGradientBoostingClassifier"):
        export_hgb(HistGradientBoostingRegressor(max_iter=3).fit(X, y))


@pytest.fixture(scope="module")
def exported():
    X, y = make_data(3, 300, nan_rate=0.2)
    clf = HistGradientBoostingClassifier(max_iter=5, early_stopping=False).fit(X, y)
    return round_trip(export_hgb(clf))


def deep_chain(depth: int) -> dict:
    # Node 2k splits into leaf 2k+1 and node 2k+2: a valid tree, just very deep.
    n = 2 * depth + 1
    split = [i % 2 == 0 and i < n - 1 for i in range(n)]
    return {"feature": [0] * n, "threshold": [0.0] * n, "value": [0.0] * n,
            "left": [i + 1 if s else 0 for i, s in enumerate(split)],
            "right": [i + 2 if s else 0 for i, s in enumerate(split)],
            "missing_go_to_left": [False] * n, "is_leaf": [not s for s in split]}


def set_root(key: str, value):
    def corrupt(m):
        m["trees"][0][key][0] = value
    return corrupt


def set_format(m):
    m["format"] = "recodai-hgb/2"


def child_backward(m):
    tree = m["trees"][0]
    node = max(i for i, leaf in enumerate(tree["is_leaf"]) if not leaf)
    tree["right"][node] = node - 1


def drop_baseline(m):
    del m["baseline"]


def inf_sends_nan_left(m):
    m["trees"][0]["threshold"][0] = float("inf")
    m["trees"][0]["missing_go_to_left"][0] = True


def short_column(m):
    m["trees"][0]["value"].pop()


def too_deep(m):
    m["trees"][0] = deep_chain(MAX_DEPTH + 1)


def not_a_dict(m):
    m["trees"][0] = [1, 2, 3]


@pytest.mark.parametrize("corrupt, problem", [
    (set_format, "format 'recodai-hgb/2' is not 'recodai-hgb/1'"),
    (set_root("left", 0), "tree 0: a child index is not greater than its parent's"),
    (child_backward, "tree 0: a child index is not greater than its parent's"),
    (set_root("right", 10**6), "tree 0: child index out of range"),
    (set_root("feature", 4), "tree 0: feature index out of range 0..3"),
    (drop_baseline, "missing keys ['baseline']"),
    (set_root("threshold", "0.5"), "tree 0: 'threshold' holds '0.5', expected float values"),
    (set_root("threshold", float("nan")), "tree 0: thresholds must be numbers, not NaN"),
    (set_root("threshold", float("-inf")), "tree 0: thresholds must be numbers, not NaN or -inf"),
    (inf_sends_nan_left, "tree 0: a +inf threshold is only valid on a split that sends NaN right"),
    (set_root("is_leaf", 0), "tree 0: 'is_leaf' holds 0, expected bool values"),
    (short_column, "tree 0: 'value' must be a list as long as 'is_leaf'"),
    (too_deep, f"tree 0: a tree is deeper than {MAX_DEPTH}"),
    (not_a_dict, "tree 0: a tree must have keys"),
])
def test_validate_model_refuses_crafted_files(exported, corrupt, problem):
    model = copy.deepcopy(exported)
    corrupt(model)
    with pytest.raises(ValueError) as info:
        validate_model(model, WHERE)
    assert str(info.value).startswith(f"{WHERE}: ") and problem in str(info.value)
    # Prediction validates too, so a crafted file can never reach the tree walk.
    with pytest.raises(ValueError):
        predict_proba_json(model, held_out())


def test_deepest_allowed_tree_is_accepted_and_walked(exported):
    model = copy.deepcopy(exported)
    model["trees"] = [deep_chain(MAX_DEPTH)]
    model["trees"][0]["value"][-1] = 3.0
    validate_model(model, WHERE)
    # Every threshold is 0, so positive rows run down the whole chain to the last leaf.
    p = predict_proba_json(model, np.array([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]]))
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-(model["baseline"] + np.array([3.0, 0.0])))))


def test_predict_refuses_wrong_number_of_features(exported):
    with pytest.raises(ValueError, match=r"X must have shape \(n_rows, 4\)"):
        predict_proba_json(exported, np.zeros((2, 3)))
