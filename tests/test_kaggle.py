"""The Kaggle package: a local rehearsal of the offline notebook run (Kaggle's folder layout, the
network blocked), the recorded thresholds and hashes, and packaging that never leaves half a folder."""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lib.competition.submission import read_submission, validate_submission_file
from lib.errors import ProjectError
from lib.inference.fusion import matcher_of
from lib.inference.infer import load_predictor
from lib.integrity import verify_package
from lib.matching import DEFAULT_VERIFIER
from lib.options import PostConfig, PredictorOptions
from lib.tools.kaggle import COMPETITION, ENTRY, NOTEBOOK, PACKAGE_FILE, PackageOptions, build_package, sha256
from tests.helpers import random_rgb, run_script, save_tiny_segmenter, write_png

NO_NETWORK = textwrap.dedent("""
    import socket

    _connect = socket.socket.connect

    def _blocked(*args, **kwargs):
        raise OSError("network disabled: offline rehearsal")

    def _local_only(self, address):
        # DataLoader workers share tensors over unix sockets; anything on IP is the network
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _blocked()
        return _connect(self, address)

    socket.socket.connect = _local_only
    socket.create_connection = _blocked
    socket.getaddrinfo = _blocked
""")


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    root = tmp_path_factory.mktemp("kaggle")
    save_tiny_segmenter(root / "models" / "highres_no_ela_v3_best.safetensors", img_size=64, seed=0)
    save_tiny_segmenter(root / "models" / "high_recall_v3_best.safetensors", img_size=64, seed=1)
    result = run_script("make_kaggle_package.py", "--output-dir", root / "pkg", "--models-dir", root / "models",
                        "--logs-dir", root / "logs", "--stage", "v3", "--fusion", "first",
                        "--seg-threshold", "0.45", "--no-wheels", cwd=root)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "2 checkpoints and the matcher's verifier, 0 wheels" in result.stdout and "total" in result.stdout
    return root


def _kaggle_input(root, n=3):
    test_dir = root / "kaggle" / "input" / COMPETITION / "test_images"
    rng = np.random.default_rng(0)
    for i in range(n):
        write_png(test_dir / f"{100 + i}.png", random_rgb(rng, 60 + 10 * i, 80))
    (test_dir / "999.png").write_bytes(b"")               # unreadable: still gets a row
    (root / "kaggle" / "working").mkdir(parents=True, exist_ok=True)
    return test_dir


def _offline(root, *args, cwd):
    """Run the package's entry point as the notebook does, with every socket call failing."""
    blocker = root / "no_network"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(NO_NETWORK)
    env = {**os.environ, "PYTHONPATH": str(blocker), "PYTHONNOUSERSITE": "1"}
    return subprocess.run([sys.executable, str(root / "pkg" / ENTRY), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_notebook_script_runs_offline_in_kaggles_layout(package):
    test_dir = _kaggle_input(package)
    cwd = package / "elsewhere"
    cwd.mkdir()
    result = _offline(package, "--kaggle-root", package / "kaggle", "--no-progress", cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    submission = package / "kaggle" / "working" / "submission.csv"
    assert validate_submission_file(submission, test_dir) == []
    frame = read_submission(submission)
    assert sorted(frame["case_id"]) == ["100", "101", "102", "999"]
    assert frame.set_index("case_id").loc["999", "annotation"] == "authentic"
    assert "999.png: empty file (0 bytes); no match, its row: authentic" in result.stderr   # said once
    assert "copy-move matcher" in result.stdout                      # fusion first: the matcher ran
    assert ("3 model file(s) (checkpoints, the matcher's verifier, the tuned settings) match the sizes and sha256"
            in result.stdout)
    assert "seg 0.45" in result.stdout                               # the packaged thresholds
    assert not list((package / "pkg").rglob("cache"))                # nothing written into the package


@pytest.mark.slow
def test_the_same_script_takes_input_dir_and_output(package):
    test_dir = _kaggle_input(package)
    output = package / "anywhere" / "sub.csv"
    result = _offline(package, "--input-dir", test_dir, "--output", output, "--fusion", "network", "--no-progress",
                      cwd=package)
    assert result.returncode == 0, result.stderr[-3000:]
    assert validate_submission_file(output, test_dir) == [] and len(read_submission(output)) == 4
    assert "copy-move matcher" not in result.stdout


def test_the_package_records_what_it_holds(package):
    pkg = package / "pkg"
    meta = json.loads((pkg / PACKAGE_FILE).read_text())
    assert {c["file"] for c in meta["checkpoints"]} == {"models/highres_no_ela_v3_best.safetensors",
                                                        "models/high_recall_v3_best.safetensors",
                                                        "models/match_verifier.json"}
    # no verifier in the models folder: the one the predictor would use is the committed default
    assert (pkg / "models" / "match_verifier.json").read_bytes() == DEFAULT_VERIFIER.read_bytes()
    for record in meta["checkpoints"]:
        assert record["sha256"] == sha256(pkg / record["file"])
    assert meta["arguments"]["ensemble"] == ["models/highres_no_ela_v3_best.safetensors:1.5",
                                             "models/high_recall_v3_best.safetensors:1"]
    assert meta["thresholds"]["seg_threshold"] == 0.45 and meta["thresholds"]["fusion"] == "first"
    assert meta["validation"]["score"] is None and meta["versions"]["torch"]
    assert (pkg / "lib" / "inference" / "infer.py").is_file() and not list(pkg.rglob("__pycache__"))
    notebook = json.loads((pkg / "notebook" / NOTEBOOK).read_text())
    assert notebook["nbformat"] == 4 and ENTRY in "".join(notebook["cells"][1]["source"])
    kernel = json.loads((pkg / "notebook" / "kernel-metadata.json").read_text())
    assert kernel["enable_internet"] is False and kernel["competition_sources"] == [COMPETITION]
    dataset = json.loads((pkg / "dataset-metadata.json").read_text())
    assert kernel["dataset_sources"] == [dataset["id"]]


def test_a_tampered_checkpoint_stops_the_run_before_anything_is_written(package, tmp_path):
    pkg = package / "pkg"
    target = pkg / "models" / "high_recall_v3_best.safetensors"
    original = target.read_bytes()
    recorded = sha256(target)
    test_dir = _kaggle_input(package, n=1)
    try:
        data = bytearray(original)                # one byte changed, same size: only the hash tells
        data[len(data) // 2] ^= 0xFF
        target.write_bytes(bytes(data))
        result = _offline(package, "--input-dir", test_dir, "--output", tmp_path / "sub.csv", cwd=tmp_path)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines() == [
            f"error: {target}: sha256 {sha256(target)} but package.json records {recorded}; the file is corrupted "
            f"or was replaced, not loading it"]
        assert not (tmp_path / "sub.csv").exists() and "installing" not in result.stdout
        with pytest.raises(ProjectError, match="corrupted or was replaced"):   # script_5 on the package's models too
            load_predictor(pkg / "models", "cpu", stage="v3", use_classifier=False)
        # another checkpoint of the package swapped in under this name: its size tells first
        target.write_bytes((pkg / "models" / "highres_no_ela_v3_best.safetensors").read_bytes()[:-1])
        with pytest.raises(ProjectError, match=f"{len(original) - 1} bytes, package.json records {len(original)}; "):
            verify_package(pkg)
    finally:
        target.write_bytes(original)
    assert verify_package(pkg) == 3                    # the two checkpoints and the matcher's verifier
    assert load_predictor(pkg / "models", "cpu", stage="v3", use_classifier=False).segmenters


def test_a_tampered_packaged_verifier_is_refused(package):
    verifier = package / "pkg" / "models" / "match_verifier.json"
    original = verifier.read_bytes()
    options = PredictorOptions(matcher="v2")
    try:
        verifier.write_bytes(original.replace(b'"threshold":', b'"threshold": ', 1))   # one byte more
        with pytest.raises(ProjectError, match="match_verifier.json: .* bytes, package.json records"):
            matcher_of(options, package / "pkg" / "models")
    finally:
        verifier.write_bytes(original)
    assert matcher_of(options, package / "pkg" / "models")[1].path == verifier


def _package_copy(package, tmp_path):
    """A copy of the package (links kept as links) that a test may tamper with."""
    copy = tmp_path / "pkg"
    shutil.copytree(package / "pkg", copy, symlinks=True)
    return copy


def test_links_extra_files_and_paths_leaving_the_package_are_refused_in_one_line(package, tmp_path):
    pkg = _package_copy(package, tmp_path)
    models = pkg / "models"
    target = models / "high_recall_v3_best.safetensors"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # a checkpoint replaced by a link, even to a file with the very bytes package.json records
    shutil.copy(target, elsewhere / "same.safetensors")
    target.unlink()
    target.symlink_to(elsewhere / "same.safetensors")
    link = f"{target}: a symbolic link inside the package; refusing to load models/high_recall_v3_best.safetensors"
    for check in (lambda: verify_package(pkg), lambda: verify_package(pkg, [target]),
                  lambda: load_predictor(models, "cpu", stage="v3", use_classifier=False)):
        with pytest.raises(ProjectError) as refused:
            check()
        assert str(refused.value).startswith(link)
    target.unlink()
    shutil.copy(elsewhere / "same.safetensors", target)
    assert verify_package(pkg) == 3
    # an extra checkpoint under a name the predictor looks for (the specialist's), a link or a file
    specialist = models / "small_forgery_specialist_best.safetensors"
    for make in (lambda: specialist.symlink_to(target), lambda: shutil.copy(target, specialist)):
        make()
        with pytest.raises(ProjectError, match=f"^{specialist}: not recorded in {pkg / PACKAGE_FILE}; refusing"):
            load_predictor(models, "cpu", stage="v3", use_classifier=False)
        specialist.unlink()
    # ensemble entries that leave the package or name a file it does not record
    shutil.copy(target, elsewhere / "x.safetensors")
    for spec, message in ((f"{models}/../../elsewhere/x.safetensors:1.5", "outside the package"),
                          (f"{elsewhere}/x.safetensors", "outside the package"),
                          (f"{models}/unrecorded.safetensors", "not recorded in")):
        Path(spec.split(":")[0]).parent.mkdir(exist_ok=True)
        if "unrecorded" in spec:
            shutil.copy(target, models / "unrecorded.safetensors")
        with pytest.raises(ProjectError, match=message):
            load_predictor(models, "cpu", ensemble=[spec], stage="v3", use_classifier=False)
    # a models folder that is itself a link out of the package
    moved = tmp_path / "models_elsewhere"
    models.rename(moved)
    models.symlink_to(moved)
    with pytest.raises(ProjectError, match=f"^{models}: a symbolic link inside the package"):
        verify_package(pkg)


def test_package_json_records_are_plain_paths_under_models(package, tmp_path):
    pkg = _package_copy(package, tmp_path)
    meta = json.loads((pkg / PACKAGE_FILE).read_text())
    for bad in ("models/../../x.safetensors", "/etc/passwd", "lib/cli.py", "models//x"):
        broken = {**meta, "checkpoints": [{**meta["checkpoints"][0], "file": bad}]}
        (pkg / PACKAGE_FILE).write_text(json.dumps(broken))
        with pytest.raises(ProjectError, match=f"no readable checkpoint records .*{re.escape(repr(bad))}"):
            verify_package(pkg)
    (pkg / PACKAGE_FILE).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ProjectError, match="no readable checkpoint records .*nested too deeply"):
        verify_package(pkg)


@pytest.mark.slow
def test_the_package_answers_for_every_file_of_the_hostile_folder(package, tmp_path):
    from lib.tools.hostile import write_hostile_folder
    from tests.test_hostile import assert_every_file_answered
    folder = write_hostile_folder(tmp_path / "test_images")
    output = tmp_path / "submission.csv"
    result = _offline(package, "--input-dir", folder, "--output", output, "--no-progress", cwd=tmp_path)
    assert_every_file_answered(result, output, folder)
    assert "3 model file(s) (checkpoints, the matcher's verifier, the tuned settings) match" in result.stdout


@pytest.mark.slow
def test_packaged_wheels_install_only_what_differs(package, tmp_path):
    # versions as installed here: nothing to install, the run goes on with no wheel file present
    import importlib.metadata
    pkg = package / "pkg"
    meta_path = pkg / PACKAGE_FILE
    original = meta_path.read_text()
    meta = json.loads(original)
    installed = importlib.metadata.version("albumentations")
    test_dir = _kaggle_input(package, n=1)
    try:
        meta["wheels"] = {"albumentations": [installed, f"albumentations-{installed}-py3-none-any.whl"]}
        meta_path.write_text(json.dumps(meta))
        ok = _offline(package, "--input-dir", test_dir, "--output", tmp_path / "a.csv", "--fusion", "network",
                      "--no-progress", cwd=tmp_path)
        assert ok.returncode == 0 and "installing" not in ok.stdout, ok.stderr[-2000:]
        # another version recorded, its wheel missing: a clear error, no pip call, no submission
        meta["wheels"] = {"albumentations": ["0.0.1", "albumentations-0.0.1-py3-none-any.whl"]}
        meta_path.write_text(json.dumps(meta))
        bad = _offline(package, "--input-dir", test_dir, "--output", tmp_path / "b.csv", cwd=tmp_path)
        assert bad.returncode == 1 and "albumentations-0.0.1-py3-none-any.whl: wheel listed" in bad.stderr
        assert "Traceback" not in bad.stderr and not (tmp_path / "b.csv").exists()
    finally:
        meta_path.write_text(original)


def test_the_package_runs_what_was_validated_for_its_models(tmp_path):
    from lib.inference.tuned import TUNED_FILE
    from tests.test_tuned import TUNED, change_a_checkpoint, tune
    models = tmp_path / "models"
    for seed, name in enumerate(("highres_no_ela", "high_recall")):
        save_tiny_segmenter(models / f"{name}_v3_best.safetensors", img_size=64, seed=seed)
    tune(models)

    def package(*args):
        return run_script("make_kaggle_package.py", "--output-dir", tmp_path / "pkg", "--overwrite", "--models-dir",
                          models, "--logs-dir", tmp_path / "logs", "--stage", "v3", "--no-wheels", *args, cwd=tmp_path)

    result = package()
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"post-processing: {TUNED.summary()} ({models / TUNED_FILE}: fusion first" in result.stdout
    meta = json.loads((tmp_path / "pkg" / PACKAGE_FILE).read_text())
    assert meta["thresholds"] == TUNED.as_dict() and meta["arguments"]["fusion"] == "first"
    assert meta["validation"]["score"] == 0.61 and meta["validation"]["file"] == f"models/{TUNED_FILE}"
    assert {"role": "postprocess", "file": f"models/{TUNED_FILE}"}.items() <= meta["checkpoints"][-1].items()
    assert verify_package(tmp_path / "pkg") == 4               # 2 checkpoints, the verifier, the tuned file

    refused = package("--sweep", tmp_path / "logs" / "sweep_1.json")
    assert refused.returncode == 1 and "--sweep: the thresholds come from what was validated" in refused.stderr
    change_a_checkpoint(models)
    refused = package()
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"{models / TUNED_FILE}: tuned for other networks" in refused.stderr
    assert package("--fusion", "first").returncode == 0         # chosen explicitly: the flags, not validated


def test_without_validation_the_package_is_the_matcher_alone_and_needs_no_network(tmp_path):
    result = run_script("make_kaggle_package.py", "--output-dir", tmp_path / "pkg", "--models-dir",
                        tmp_path / "models", "--logs-dir", tmp_path / "logs", "--no-wheels", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "0 checkpoints and the matcher's verifier" in result.stdout
    meta = json.loads((tmp_path / "pkg" / PACKAGE_FILE).read_text())
    assert meta["thresholds"]["fusion"] == "matcher" and meta["arguments"]["ensemble"] == []
    assert "the matcher alone at its verifier's threshold" in meta["validation"]["note"]


def test_packaging_refuses_to_overwrite_and_leaves_no_half_package(package, tmp_path):
    options = PackageOptions(PredictorOptions(stage="v3"), wheels="none")
    with pytest.raises(ProjectError, match="exists and is not empty.*--overwrite"):
        build_package(package / "pkg", package / "models", PostConfig(), None, options)
    empty_wheels = tmp_path / "wheels"
    empty_wheels.mkdir()
    with pytest.raises(ProjectError, match="no wheel for"):
        build_package(tmp_path / "new", package / "models", PostConfig(), None,
                      PackageOptions(PredictorOptions(stage="v3"), wheels=str(empty_wheels)))
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new.partial*"))
    with pytest.raises(ProjectError, match="no segmentation checkpoints"):
        build_package(tmp_path / "none", tmp_path, PostConfig(), None, options)
