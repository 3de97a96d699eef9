"""Models: shapes, registry, checkpoints that reload to identical outputs, clear errors, offline weights."""
import os
import subprocess
import sys

import pytest
import torch

from lib.models import (AttentionFPN, CheckpointError, ForgeryClassifier, WeightsError, build_model,
                        load_model, save_checkpoint)
from tests.helpers import ROOT

SEG = {"arch": "attention_fpn", "encoder": "resnet18", "in_channels": 3}
CLS = {"arch": "classifier", "encoder": "resnet18", "in_channels": 3}


def test_attention_fpn_gives_one_logit_channel_at_input_size():
    model = build_model({"arch": "attention_fpn", "in_channels": 4}).eval()
    assert isinstance(model, AttentionFPN)
    assert model.base.encoder.__class__.__name__.lower().startswith("efficientnet")
    with torch.no_grad():
        out = model(torch.randn(2, 4, 64, 96))
    assert out.shape == (2, 1, 64, 96)


def test_any_smp_encoder_by_name():
    with torch.no_grad():
        assert build_model(SEG).eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1, 64, 64)


def test_classifier_head_and_output():
    model = build_model({"arch": "classifier"}).eval()
    assert isinstance(model, ForgeryClassifier)
    head = [type(m).__name__ for m in model.classifier]
    assert head == ["Linear", "ReLU", "Dropout", "Linear"] and model.classifier[0].out_features == 256
    with torch.no_grad():
        assert model(torch.randn(3, 3, 64, 64)).shape == (3,)


def test_unknown_arch_lists_known_ones():
    with pytest.raises(ValueError, match="known: attention_fpn, classifier"):
        build_model({"arch": "unet"})


@pytest.mark.parametrize("config, shape", [(SEG, (2, 3, 64, 64)), (CLS, (2, 3, 64, 64))])
def test_checkpoint_reloads_to_identical_outputs(tmp_path, config, shape):
    torch.manual_seed(0)
    model = build_model(config).eval()
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = model(x)
    path = tmp_path / "m.pth"
    save_checkpoint(path, model, config, epoch=3, loss=0.5, val_score=0.7)
    loaded, checkpoint = load_model(path)
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
    assert checkpoint["epoch"] == 3 and checkpoint["val_score"] == 0.7
    assert checkpoint["model_config"] == config
    assert list(tmp_path.iterdir()) == [path]


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth: not a readable checkpoint"):
        load_model(tmp_path / "junk.pth")
    torch.save({"weights": 1}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not a checkpoint of this project"):
        load_model(tmp_path / "other.pth")
    model = build_model(SEG)
    save_checkpoint(tmp_path / "wrong.pth", model, {**SEG, "encoder": "resnet34"})
    with pytest.raises(CheckpointError, match="wrong.pth: weights do not fit model"):
        load_model(tmp_path / "wrong.pth")


def test_local_encoder_weights_file(tmp_path):
    source = build_model(SEG)
    torch.save(source.encoder.state_dict(), tmp_path / "enc.pth")
    model = build_model(SEG, str(tmp_path / "enc.pth"))
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value)
    with pytest.raises(WeightsError, match="not found"):
        build_model(SEG, str(tmp_path / "nope.pth"))
    torch.save({"unrelated": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match="no tensor of this file fits"):
        build_model(SEG, str(tmp_path / "bad.pth"))


def test_offline_imagenet_download_says_what_to_do():
    # HF_HUB_OFFLINE makes the hub fail at once, exactly as a machine without internet does
    code = ("from lib.models import build_model\n"
            "build_model({'arch': 'attention_fpn', 'encoder': 'timm-efficientnet-b2'}, 'imagenet')\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "WeightsError: cannot download ImageNet weights for encoder 'timm-efficientnet-b2'" in result.stderr
    assert "--encoder-weights none" in result.stderr
