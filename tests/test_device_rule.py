"""The core decides where tensors live; lesson code never picks a device itself.

Two checks that need no GPU:
- a scan of lesson code for the two ways it has put tensors on the wrong device: in
  trainlab/lessons/*.py, a tensor created without naming a device (it lands on the
  CPU while the model is on the GPU); there and in every notebook's code cells,
  `.numpy()` on a tensor not first brought to the CPU;
- the core run under a second device. PyTorch's `meta` device stands in for a GPU:
  like cuda, an operation mixing it with CPU tensors raises "not on the expected
  device". With the spec's device resolved to `meta`, the data and the models the
  core hands out must all be there, and evaluation must move CPU inputs to the model.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import trainlab.data
import trainlab.device
import trainlab.models
import trainlab.tabular
from trainlab import Spec
from trainlab.data import load_data, probe_batch
from trainlab.device import model_device, to_model
from trainlab.evaluation import outputs
from trainlab.models import build_model, fresh_model

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "shared" / "trainlab" / "lessons").glob("*.py"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# torch functions that create a tensor from nothing: without `device=` it is a CPU tensor.
FACTORIES = {"zeros", "ones", "full", "empty", "randn", "rand", "randint", "tensor", "as_tensor", "arange",
             "linspace", "logspace", "eye"}


def _problems(source: str, factories: bool = True) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        f = node.func
        if (factories and f.attr in FACTORIES and isinstance(f.value, ast.Name) and f.value.id == "torch"
                and not any(k.arg == "device" for k in node.keywords)):
            found.append(f"line {node.lineno}: torch.{f.attr}(...) without device=")
        if f.attr == "numpy" and not (isinstance(f.value, ast.Call) and isinstance(f.value.func, ast.Attribute)
                                      and f.value.func.attr == "cpu"):
            found.append(f"line {node.lineno}: .numpy() without .cpu() before it")
    return found


def _code_cells(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    # IPython magics are not Python; nothing in them creates tensors.
    return "\n".join("\n".join(line for line in c.splitlines() if not line.lstrip().startswith(("%", "!")))
                     for c in code)


def test_the_scan_flags_what_it_is_for():
    bad = "import torch\nx = torch.zeros(3)\ny = w.numpy()\nz = torch.randn(2, device=x.device)\nv = w.cpu().numpy()\n"
    assert _problems(bad) == ["line 2: torch.zeros(...) without device=", "line 3: .numpy() without .cpu() before it"]


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_lesson_modules_create_tensors_on_a_named_device(path):
    assert _problems(path.read_text()) == [], f"{path.name}: lesson code must take its device from the " \
        "core (data.device, model_device(model), to_model) or name the CPU on purpose"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_bring_tensors_to_the_cpu_before_numpy(path):
    # Notebooks build small tensors on the CPU on purpose (a formula on five numbers);
    # whatever meets a model goes through the core, which `make test-gpu` runs on cuda.
    assert _problems(_code_cells(path), factories=False) == []


@pytest.fixture
def meta_is_the_spec_device(monkeypatch, mnist_ready):
    """Every module of the core that resolves a spec's device gets `meta` instead."""
    meta = torch.device("meta")
    for module in (trainlab.data, trainlab.models, trainlab.tabular):
        monkeypatch.setattr(module, "resolve_device", lambda name: meta)
    return meta


SMALL = Spec(subset=200, depth=2, width=16, batch_size=20)


def test_load_data_puts_every_tensor_on_the_spec_device(meta_is_the_spec_device):
    for spec in (SMALL, Spec(dataset="diabetes", batch_size=16)):
        data = load_data(spec)
        tensors = [data.train_x, data.train_y, data.val_x, data.val_y, data.test_x, data.test_y, data.mean, data.std]
        assert {t.device for t in tensors} == {meta_is_the_spec_device}, spec.dataset
        assert data.device == meta_is_the_spec_device
    x, y, _ = probe_batch(SMALL, 32)
    assert x.device == y.device == meta_is_the_spec_device


def test_models_are_built_on_the_spec_device(meta_is_the_spec_device):
    for spec in (SMALL, SMALL.replace(model="cnn", width=4, norm="batch"), SMALL.replace(fault="softmax_before_loss")):
        assert model_device(build_model(spec)) == meta_is_the_spec_device
    assert model_device(fresh_model(SMALL)) == meta_is_the_spec_device


def test_evaluation_moves_inputs_to_the_model(meta_is_the_spec_device):
    model = build_model(SMALL)
    x = torch.randn(50, 1, 28, 28, device="cpu")
    assert outputs(model, x, chunk=16).shape == (50, 10)  # CPU inputs, meta model: moved chunk by chunk
    assert to_model(model, x).device == meta_is_the_spec_device


def test_model_device_and_to_model_on_the_cpu():
    model = nn.Sequential(nn.Linear(3, 2))
    x, y = to_model(model, torch.zeros(1, 3, device="cpu"), torch.zeros(1, device="cpu"))
    assert model_device(model) == x.device == y.device == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")  # no parameters: the CPU
