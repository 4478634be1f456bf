"""Device selection: ``pick_device`` accepts auto/cpu/cuda[:N] and rejects what this machine cannot run in one line."""

from __future__ import annotations

import os

import pytest
import torch

from cnnlab.device import configure_threads, contiguous_strides, memory_format_for, pick_device, thread_count
from cnnlab.errors import UserError


def test_auto_and_cpu():
    assert pick_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device(None).type == expected and pick_device("auto").type == expected


def test_not_a_device_is_a_user_error():
    with pytest.raises(UserError, match=r"--device 'gpu7' is not a device: use auto, cpu or cuda\[:N\]"):
        pick_device("gpu7")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_user_error():
    with pytest.raises(UserError, match=r"--device cuda:0 asked for CUDA but no CUDA device is available"):
        pick_device("cuda:0")


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_an_existing_cuda_index_is_accepted(two_gpus):
    assert pick_device("cuda:1") == torch.device("cuda:1")
    assert pick_device("cuda") == torch.device("cuda")


def test_a_cuda_index_beyond_the_devices_names_the_count(two_gpus):
    with pytest.raises(UserError) as err:
        pick_device("cuda:7")
    assert str(err.value) == ("--device cuda:7: this machine has 2 CUDA devices (cuda:0 to cuda:1): "
                              "use one of them, cuda or auto")


# --- threads per process: CNNLAB_THREADS, or the cores shared among CNNLAB_JOBS parallel jobs ---------------------

@pytest.fixture
def eight_cores(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.delenv("CNNLAB_THREADS", raising=False)
    monkeypatch.delenv("CNNLAB_JOBS", raising=False)
    return monkeypatch


@pytest.mark.parametrize(("jobs", "threads"), [(None, 8), ("1", 8), ("2", 4), ("3", 2), ("8", 1), ("16", 1)])
def test_jobs_share_the_cores(eight_cores, jobs, threads):
    if jobs is not None:
        eight_cores.setenv("CNNLAB_JOBS", jobs)
    assert thread_count() == threads


def test_explicit_threads_win_over_jobs(eight_cores):
    eight_cores.setenv("CNNLAB_JOBS", "4")
    eight_cores.setenv("CNNLAB_THREADS", "3")
    assert thread_count() == 3


def test_configure_threads_sets_torch(eight_cores):
    before = torch.get_num_threads()
    eight_cores.setenv("CNNLAB_JOBS", "4")
    try:
        assert configure_threads() == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("name", "value"), [("CNNLAB_JOBS", "0"), ("CNNLAB_JOBS", "two"), ("CNNLAB_THREADS", "x")])
def test_bad_thread_settings_are_user_errors(eight_cores, name, value):
    eight_cores.setenv(name, value)
    with pytest.raises(UserError, match=rf"^{name}='{value}' is not"):
        thread_count()


def test_a_stage_with_bad_jobs_fails_in_one_line(tmp_path):
    """A real stage process: CNNLAB_JOBS=0 is a one-line error (exit 2) before any data is read."""
    import subprocess
    import sys

    from helpers import ROOT, assert_one_line_error

    env = {k: v for k, v in os.environ.items() if k != "CNNLAB_THREADS"}
    env.update(CNNLAB_JOBS="0", CNNLAB_DEVICE="cpu", PYTHONPATH=str(ROOT))
    (tmp_path / "params.yaml").write_bytes((ROOT / "params.yaml").read_bytes())
    proc = subprocess.run([sys.executable, str(ROOT / "stages" / "train_classifier.py"), "--arch", "plain",
                           "--depth", "8", "--variant", "relu-bn", "--seed", "0"], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert_one_line_error(proc, "CNNLAB_JOBS='0' is not a positive integer")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_channels_last_is_dropped_on_cpu_only_for_a_strided_1x1_conv_with_few_input_channels():
    """PyTorch 2.14's CPU backward of a 1x1 stride-2 conv with < 8 input channels in channels-last format corrupts
    memory on AVX2-only CPUs (ResNet-18 at width 1/16: its layer2 projection has 4): such a model keeps the default
    format on the CPU; everything else gets channels-last when asked, and nothing does when not asked."""
    from cnnlab.models.resnet18 import ResNet18, ResNet18Config

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    tiny = ResNet18(ResNet18Config(width=0.0625, in_channels=1))  # projections 4->8, 8->16, 16->32
    small = ResNet18(ResNet18Config(width=0.125, in_channels=1))  # 8->16: fine
    assert memory_format_for(tiny, cpu, True) == torch.contiguous_format
    assert memory_format_for(tiny, cuda, True) == torch.channels_last
    assert memory_format_for(small, cpu, True) == torch.channels_last
    assert memory_format_for(small, cpu, False) == torch.contiguous_format
    assert memory_format_for(torch.nn.Conv2d(4, 8, 3, stride=2), cpu, True) == torch.channels_last


def test_contiguous_strides_and_a_one_channel_batch_that_only_looks_contiguous():
    assert contiguous_strides(torch.Size([2, 3, 4, 5])) == (60, 20, 5, 1)
    x = torch.zeros(2, 1, 4, 4).contiguous(memory_format=torch.channels_last)
    y = x.clone(memory_format=torch.contiguous_format)
    assert y.stride() == contiguous_strides(y.shape) and torch.equal(x, y)
