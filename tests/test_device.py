"""Device selection: ``pick_device`` accepts auto/cpu/cuda[:N] and rejects what this machine cannot run in one line."""

from __future__ import annotations

import pytest
import torch

from cnnlab.device import pick_device
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
