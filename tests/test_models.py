"""Models: shapes, registry, config checks, clear errors, offline weights (checkpoints: test_checkpoints.py)."""
import os
import subprocess
import sys

import pytest
import torch

from lib.models.networks import AttentionFPN, ForgeryClassifier, WeightsError, build_model, check_model_config
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


def test_local_encoder_weights_as_safetensors(tmp_path):
    from safetensors.torch import save_file
    source = build_model(SEG)
    save_file({k: v.contiguous() for k, v in source.encoder.state_dict().items()}, tmp_path / "enc.safetensors")
    model = build_model(SEG, str(tmp_path / "enc.safetensors"))
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value)


@pytest.mark.parametrize("config, problem", [
    ({"arch": "unet"}, "unknown model arch 'unet'"),
    ({**SEG, "encoder": "hf-hub:someone/model"}, "not a plain encoder name"),
    ({**SEG, "encoder": "local-dir:/tmp/x"}, "not a plain encoder name"),
    ({**SEG, "encoder": "no_such_encoder"}, "unknown encoder 'no_such_encoder'"),
    ({**CLS, "encoder": "tu-resnet18"}, "unknown encoder 'tu-resnet18' for classifier"),
    ({**SEG, "in_channels": "3"}, "in_channels '3' is not an int"),
])
def test_a_config_from_a_file_names_only_known_models(config, problem):
    with pytest.raises(ValueError, match=problem):
        check_model_config(config)


def test_known_configs_pass_the_check():
    for config in (SEG, CLS, {"arch": "attention_fpn", "encoder": "timm-efficientnet-b2"},
                   {**SEG, "encoder": "tu-resnet18"}, {"arch": "classifier", "encoder": "efficientnet_b2"}):
        check_model_config(config)


def test_offline_imagenet_download_says_what_to_do(tmp_path):
    # HF_HUB_OFFLINE makes the hub fail at once, exactly as a machine without internet does; the
    # caches point at an empty folder, so weights downloaded earlier on this machine cannot serve
    code = ("from lib.models.networks import build_model\n"
            "build_model({'arch': 'attention_fpn', 'encoder': 'timm-efficientnet-b2'}, 'imagenet')\n")
    empty = str(tmp_path / "cache")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": empty, "HF_HUB_CACHE": empty, "TORCH_HOME": empty,
           "XDG_CACHE_HOME": empty}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "WeightsError: cannot download ImageNet weights for encoder 'timm-efficientnet-b2'" in result.stderr
    assert "--encoder-weights none" in result.stderr
