"""Checkpoint files: model checkpoints are safetensors that reload to identical outputs and carry
their fields; nothing a user can be handed runs code when loaded (a crafted pickle, a crafted
safetensors header, an old checkpoint converted); resume states load with weights_only; atomic
writes end with the umask's permissions and survive a full disk; and no code path in lib/ or bin/
can unpickle."""
import ast
import json
import math
import os
import pickle
import resource
import runpy
import signal
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.errors import CheckpointError
from lib.fileio import WriteError, atomic_write_text, remove_stale_temporaries
from lib.models.checkpoints import (FORMAT, convert_checkpoint, find_best, load_model, read_checkpoint,
                                    read_resume_state, save_checkpoint, save_resume_state)
from lib.models.networks import build_model
from tests.helpers import ROOT, TINY_SEGMENTER, changed_checkpoint, run_script

SEG = TINY_SEGMENTER
CLS = {"arch": "classifier", "encoder": "resnet18", "in_channels": 3}


class Payload:
    """A pickle that creates `target` when unpickled: what a crafted .pth does."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def crafted_pth(path: Path, target: Path) -> Path:
    """A torch file whose pickle runs `touch target` on a weights_only=False load."""
    torch.save({"model_state_dict": {}, "model_config": {"arch": "attention_fpn"}, "hook": Payload(target)}, path)
    return path


@pytest.fixture(scope="module")
def seg_model():
    torch.manual_seed(0)
    return build_model(SEG).eval()


@pytest.fixture(scope="module")
def good(tmp_path_factory, seg_model):
    path = tmp_path_factory.mktemp("ckpt") / "highres_no_ela_v3_best.safetensors"
    save_checkpoint(path, seg_model, SEG, epoch=3, best_score=0.7, img_size=64,
                    val_metrics={"score": np.float64(0.7), "val_loss": np.float32(0.25), "auc": math.nan},
                    history=[{"epoch": 1, "score": 0.5}], train_config={"models_dir": Path("models")})
    return path


@pytest.mark.parametrize("config", [SEG, CLS])
def test_checkpoint_reloads_to_identical_outputs(tmp_path, config):
    torch.manual_seed(0)
    model = build_model(config).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, config, epoch=3, loss=0.5, val_score=0.7)
    loaded, checkpoint = load_model(path)
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
    assert checkpoint["epoch"] == 3 and checkpoint["val_score"] == 0.7 and checkpoint["model_config"] == config
    assert list(tmp_path.iterdir()) == [path]                       # no temporary left


def test_a_checkpoint_is_safetensors_with_its_fields_as_json(good):
    data = good.read_bytes()
    header = json.loads(data[8: 8 + struct.unpack("<Q", data[:8])[0]])
    metadata = header["__metadata__"]
    assert metadata["format"] == FORMAT and json.loads(metadata["model_config"]) == SEG
    checkpoint = read_checkpoint(good)
    assert checkpoint["val_metrics"]["score"] == 0.7 and checkpoint["val_metrics"]["val_loss"] == 0.25
    assert math.isnan(checkpoint["val_metrics"]["auc"])            # NaN survives (undefined AUC)
    assert checkpoint["history"] == [{"epoch": 1, "score": 0.5}]
    assert checkpoint["train_config"] == {"models_dir": "models"}   # a Path is written as text


def test_a_header_length_starting_with_the_pickle_byte_still_loads(tmp_path):
    """A safetensors file begins with its header length; 0x80 there is not a pickle's opcode."""
    from safetensors.torch import save_file
    path = tmp_path / "m.safetensors"
    for pad in range(256):
        save_file({"w": torch.zeros(2)}, str(path), metadata={"format": FORMAT, "model_config": json.dumps(SEG),
                                                             "pad": json.dumps("x" * pad)})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    assert read_checkpoint(path)["model_config"] == SEG
    path.write_bytes(path.read_bytes()[:40])             # truncated: still called what it is
    with pytest.raises(CheckpointError, match="m.safetensors: not a readable safetensors checkpoint"):
        read_checkpoint(path)


def test_bad_checkpoints_are_one_line_errors(tmp_path, good):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.safetensors: not a readable safetensors checkpoint"):
        load_model(tmp_path / "junk.safetensors")
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        load_model(tmp_path / "foreign.safetensors")
    wrong = changed_checkpoint(good, tmp_path / "wrong.safetensors", model_config={**SEG, "encoder": "resnet34"})
    with pytest.raises(CheckpointError, match="wrong.safetensors: weights do not fit model"):
        load_model(wrong)


@pytest.mark.parametrize("value", ["abc", None, 0, 127.5, 60000, True, 100])
def test_an_img_size_out_of_type_or_range_is_one_line_naming_the_field(tmp_path, good, value):
    path = changed_checkpoint(good, tmp_path / "odd.safetensors", img_size=value)
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint(path)
    assert str(refused.value) == (f"{path}: metadata img_size {value!r} is not an integer multiple of 32 "
                                  f"from 32 to 4096")


def test_odd_metadata_fields_and_weights_are_one_line_naming_them(tmp_path, good):
    for fields, message in (({"epoch": -1}, "metadata epoch -1 is not an integer >= 0"),
                            ({"best_score": "nan"}, "metadata best_score 'nan' is not a finite number")):
        with pytest.raises(CheckpointError, match=f"odd.safetensors: {message}"):
            read_checkpoint(changed_checkpoint(good, tmp_path / "odd.safetensors", **fields))
    deep = changed_checkpoint(good, tmp_path / "deep.safetensors", raw={"history": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(CheckpointError, match="deep.safetensors: metadata field 'history' is not JSON"):
        read_checkpoint(deep)
    extra = tmp_path / "extra.safetensors"
    from safetensors.torch import save_file
    checkpoint = read_checkpoint(good)
    metadata = {"format": FORMAT, "model_config": json.dumps(SEG)}
    save_file({**checkpoint["model_state_dict"], "stowaway.weight": torch.zeros(3)}, str(extra), metadata=metadata)
    with pytest.raises(CheckpointError, match=r"extra.safetensors: weights do not fit model .*\(unexpected tensor "
                                              r"'stowaway.weight'\)"):
        load_model(extra)


def test_a_giant_model_config_is_refused_before_it_is_built(tmp_path, good):
    config = {"arch": "classifier", "encoder": "vit_giant_patch14_224", "in_channels": 3}
    giant = changed_checkpoint(good, tmp_path / "giant.safetensors", model_config=config)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=r"giant.safetensors: its model_config .* has 1,011,563,393 parameters, "
                                              r"more than the 300,000,000 of any network of this project"):
        load_model(giant)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000     # KiB: nothing allocated


def test_a_crafted_pickle_is_refused_and_never_run(tmp_path):
    target = tmp_path / "PWNED"
    path = crafted_pth(tmp_path / "highres_no_ela_v3_best.pth", target)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    message = str(err.value)
    assert message.startswith(f"{path}: a torch pickle file") and "\n" not in message
    assert f"python bin/convert_checkpoint.py {path}" in message
    with pytest.raises(CheckpointError, match="not loadable with weights_only=True"):
        convert_checkpoint(path)                      # the conversion reads it with weights_only=True
    with pytest.raises(CheckpointError, match="not a readable resume state"):
        read_resume_state(path)
    assert not target.exists()
    assert not path.with_suffix(".safetensors").exists()


@pytest.mark.slow
def test_the_crafted_pickle_as_a_users_models_folder_is_refused_by_predict(tmp_path):
    """The report's scenario: the crafted file as models/highres_no_ela_v3_best.pth, then predict."""
    target = tmp_path / "PWNED"
    models = tmp_path / "models"
    models.mkdir()
    crafted_pth(models / "highres_no_ela_v3_best.pth", target)
    (tmp_path / "test_images").mkdir()
    from tests.helpers import random_rgb, write_png
    write_png(tmp_path / "test_images" / "1.png", random_rgb(np.random.default_rng(0), 32, 32))
    result = run_script("script_5_predict.py", "--input-dir", tmp_path / "test_images", "--output",
                        tmp_path / "submission.csv", "--models-dir", models, "--logs-dir", tmp_path / "logs",
                        "--stage", "v3", "--device", "cpu", "--no-progress", "--fusion", "network", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {models / 'highres_no_ela_v3_best.pth'}: a torch pickle file"), result.stderr
    assert "convert_checkpoint.py" in last
    assert not target.exists() and not (tmp_path / "submission.csv").exists()


@pytest.mark.parametrize("case", ["pickle in a metadata field", "hub encoder", "path as encoder", "format missing"])
def test_a_crafted_safetensors_header_is_refused_without_running_anything(tmp_path, good, case):
    target = tmp_path / "PWNED"
    payload = pickle.dumps(Payload(target)).decode("latin-1")
    changes = {"pickle in a metadata field": dict(raw={"history": payload}),
               "hub encoder": dict(model_config={**SEG, "encoder": "tu-hf-hub:attacker/model"}, hook=payload),
               "path as encoder": dict(model_config={"arch": "classifier", "encoder": "local-dir:/tmp/model"}),
               "format missing": dict(raw={"format": "something else"})}[case]
    path = changed_checkpoint(good, tmp_path / "crafted.safetensors", **changes)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
    assert not target.exists()


def test_an_earlier_versions_checkpoint_converts_to_identical_outputs(tmp_path, seg_model, capsys, monkeypatch):
    # what save_checkpoint wrote before safetensors: one torch pickle with numpy scalars in its metrics
    old = tmp_path / "highres_no_ela_v3_best.pth"
    torch.save({"model_state_dict": seg_model.state_dict(), "model_config": SEG, "epoch": 4,
                "best_score": np.float64(0.61), "val_metrics": {"score": np.float64(0.61), "val_loss": 0.3},
                "history": [{"epoch": 4, "score": np.float64(0.61)}], "img_size": 64}, old)
    with pytest.raises(CheckpointError, match="convert_checkpoint.py"):
        find_best(tmp_path, "highres_no_ela_v3")                  # the predictor's lookup names the command
    monkeypatch.setattr(sys, "argv", ["convert_checkpoint.py", str(old)])   # the script, in this process
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / "bin" / "convert_checkpoint.py"), run_name="__main__")
    assert exit_info.value.code == 0
    new = tmp_path / "highres_no_ela_v3_best.safetensors"
    out = capsys.readouterr().out
    assert f"{old} -> {new}" in out and "epoch 4, best val score 0.6100" in out
    assert find_best(tmp_path, "highres_no_ela_v3") == new
    model, checkpoint = load_model(new)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), seg_model(x))
    assert checkpoint["best_score"] == 0.61 and checkpoint["img_size"] == 64
    with pytest.raises(CheckpointError, match=f"{new}: exists; pass --overwrite to replace it"):
        convert_checkpoint(old)


def test_a_resume_state_round_trips_with_weights_only(tmp_path, seg_model):
    optimizer = torch.optim.AdamW(seg_model.parameters(), lr=1e-3)
    path = tmp_path / "run_last.pth"
    save_resume_state(path, seg_model, SEG, optimizer_state_dict=optimizer.state_dict(), epoch=2,
                      best_score=np.float64(0.5), history=[{"score": np.float32(0.5)}])
    state = read_resume_state(path)            # torch.load(weights_only=True) inside
    assert state["epoch"] == 2 and state["best_score"] == 0.5 and state["history"] == [{"score": 0.5}]
    assert state["optimizer_state_dict"]["param_groups"][0]["lr"] == 1e-3
    for key, value in seg_model.state_dict().items():
        assert torch.equal(state["model_state_dict"][key], value), key


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_end_with_the_umasks_permissions(tmp_path, umask, seg_model):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "submission.csv", "case_id,annotation\n")
        save_checkpoint(tmp_path / "m.safetensors", seg_model, SEG)
    finally:
        os.umask(old)
    for name in ("submission.csv", "m.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


@pytest.fixture
def file_size_limit():
    """Simulate a full disk in this process: writes past `limit` bytes fail with EFBIG (SIGXFSZ
    ignored, as a process given RLIMIT_FSIZE by its shell would); restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def limit(size):
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    yield limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, handler)


def test_a_full_disk_leaves_the_earlier_checkpoint_and_no_temporary(tmp_path, seg_model, good, file_size_limit):
    path = tmp_path / "highres_no_ela_v3_best.safetensors"
    path.write_bytes(good.read_bytes())
    before = path.read_bytes()
    file_size_limit(64 * 1024)
    with pytest.raises(WriteError) as err:
        save_checkpoint(path, seg_model, SEG, epoch=9)
    file_size_limit(resource.RLIM_INFINITY)
    assert str(err.value) == f"{path}: writing failed (File too large); the earlier file, if any, is untouched"
    assert path.read_bytes() == before and sorted(tmp_path.iterdir()) == [path]


def test_stale_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead = tmp_path / ".x_last.pth.999999999.ab12cd34.tmp"      # no such pid
    live = tmp_path / f".x_last.pth.{os.getpid()}.ab12cd34.tmp"
    other = tmp_path / ".hidden.tmp"                              # not ours: no pid in the name
    for path in (dead, live, other):
        path.write_bytes(b"partial")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert live.exists() and other.exists() and not dead.exists()


UNPICKLERS = {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal"}


def unpickling_calls(source: str, name: str = "<source>") -> list[str]:
    """Calls in `source` that can unpickle: torch.load without a literal weights_only=True, any
    load of the pickle family, pandas' read_pickle, np.load with allow_pickle not literally False."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func, keywords = ast.unparse(node.func), {k.arg: k.value for k in node.keywords}

        def literal(key, keywords=keywords):
            value = keywords.get(key)
            return value.value if isinstance(value, ast.Constant) else ("absent" if value is None else "expr")
        if (func.endswith("torch.load") and literal("weights_only") is not True
                or func.split(".")[0] in UNPICKLERS and func.split(".")[-1] in ("load", "loads", "Unpickler", "open")
                or func.endswith("read_pickle")
                or func.endswith("np.load") and literal("allow_pickle") not in ("absent", False)):
            found.append(f"{name}:{node.lineno} {func}")
    return found


def test_no_code_outside_tests_can_unpickle():
    found = []
    for path in sorted([*ROOT.glob("lib/**/*.py"), *ROOT.glob("bin/*.py")]):
        found += unpickling_calls(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert not found, f"calls that can unpickle: {found}"


def test_the_unpickling_scan_catches_what_it_must():
    source = ("import torch, pickle, numpy as np, pandas as pd\n"
              "torch.load(p)\ntorch.load(p, weights_only=False)\ntorch.load(p, weights_only=flag)\n"
              "pickle.loads(b)\nnp.load(p, allow_pickle=True)\npd.read_pickle(p)\n"
              "torch.load(p, weights_only=True)\nnp.load(p)\nnp.load(p, allow_pickle=False)\njson.loads(t)\n")
    assert [line.split(" ")[0] for line in unpickling_calls(source)] == [f"<source>:{n}" for n in range(2, 8)]
