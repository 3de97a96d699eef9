"""torchrun: two CPU processes (gloo) train one model on shares of one weighted draw; rank 0 alone
logs, validates and writes checkpoints; a plain run is unchanged."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from lib.data.demo import make_demo_dataset
from lib.device import Amp
from lib.errors import ProjectError
from lib.models.checkpoints import read_resume_state
from lib.training.datasets import make_sampler
from lib.training.distributed import ShardedWeightedSampler
from tests.helpers import ROOT


def test_ranks_share_one_weighted_draw():
    weights = np.array([5.0, 1.0, 1.0, 0.0, 2.0, 1.0, 3.0])
    samplers = [make_sampler(weights, seed=7, rank=r, world_size=3) for r in range(3)]
    assert all(isinstance(s, ShardedWeightedSampler) for s in samplers)
    shares = [list(s) for s in samplers]
    assert {len(s) for s in shares} == {3}                       # 7 draws padded to 9: equal batches per rank
    draw = torch.multinomial(torch.as_tensor(weights), 9, replacement=True, generator=torch.Generator().manual_seed(7))
    interleaved = [shares[i % 3][i // 3] for i in range(9)]
    assert interleaved == draw.tolist()                          # together: exactly the one draw
    assert 3 not in sum(shares, [])                              # weight 0 is never drawn
    for s in samplers:                                           # reseeding per epoch replays it
        s.generator.manual_seed(7)
    assert [list(s) for s in samplers] == shares
    single = make_sampler(weights, seed=7)
    assert not isinstance(single, ShardedWeightedSampler) and len(single) == 7


def test_amp_modes():
    cpu = torch.device("cpu")
    assert not Amp(cpu, "bf16").enabled and not Amp(cpu).enabled   # never on the CPU
    with pytest.raises(ProjectError, match="--amp fp8"):
        Amp(cpu, "fp8")


@pytest.mark.slow
def test_two_gloo_processes_train_with_torchrun(tmp_path):
    make_demo_dataset(tmp_path / "data", n_forged=12, n_test=1, n_supplemental=0, max_size=256, seed=5, progress=False)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(ROOT / "bin" / "script_1_train_v3.py"), "--model", "highres_no_ela", "--epochs", "3",
               "--lr", "1e-3", "--img-size", "64", "--batch-size", "4", "--workers", "0", "--limit", "16",
               "--encoder-weights", "none", "--no-progress", "--keep-last", "--data-dir", str(tmp_path / "data"),
               "--models-dir", str(tmp_path / "models"), "--logs-dir", str(tmp_path / "logs")]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[rank 0/2] joined the process group (gloo" in result.stderr
    assert "[rank 1/2] joined the process group (gloo" in result.stderr
    assert result.stdout.count("best val score") == 1             # rank 0 alone reports
    logs = list((tmp_path / "logs").glob("*.log"))
    assert len(logs) == 1                                        # and logs
    text = logs[0].read_text()
    assert "on cpu x 2 processes" in text and "frozen for DistributedDataParallel" in text
    checkpoint = read_resume_state(tmp_path / "models" / "highres_no_ela_v3_last.pth")
    losses = [h["train_loss"] for h in checkpoint["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]           # the loss falls
    assert not any(k.startswith("module.") for k in checkpoint["model_state_dict"])   # plain weights, loadable
