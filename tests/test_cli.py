import json
import os
import subprocess
import sys

import pytest
from trainlab.spec import Spec


def cli(*args, env=None, timeout=300):
    full_env = {**os.environ, "TRAINLAB_PROGRESS": "0", **(env or {})}
    return subprocess.run([sys.executable, "-m", "trainlab", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


def test_run_json_shape(mnist_ready):
    r = cli("run", "--subset", "1000", "--epochs", "1", "--depth", "1", "--width", "32", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"spec", "final", "diverged", "epochs_completed", "seconds", "device", "threads"}
    assert out["threads"] >= 1
    assert set(out["final"]) == {"train_loss", "val_loss", "val_acc", "test_acc"}
    assert Spec.from_dict(out["spec"]).subset == 1000
    assert out["diverged"] is False and out["epochs_completed"] == 1 and out["device"] == "cpu"


def test_diverged_run_exits_zero(mnist_ready):
    r = cli("run", "--subset", "600", "--epochs", "2", "--depth", "14", "--init", "normal", "--init-std", "100",
            "--scale", "none", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["diverged"] is True and out["final"]["train_loss"] is None


@pytest.mark.parametrize("args,field", [
    (["--lr", "-1"], "lr"), (["--activation", "swish"], "activation"), (["--batch-size", "ten"], "batch_size"),
    (["--subset", "50", "--batch-size", "64"], "batch_size"),
])
def test_invalid_spec_exits_2_with_one_line(args, field):
    r = cli("run", *args, "--json")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{field}:" in lines[0]


def test_unknown_flag_exits_2_with_one_line():
    r = cli("run", "--learning-rate", "0.1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--learning-rate" in r.stderr


def test_missing_data_exits_1_with_the_message(tmp_path):
    empty = tmp_path / "mirror"
    empty.mkdir()
    r = cli("run", "--subset", "1000", "--json", env={"TRAINLAB_DATA": str(tmp_path / "d"), "TRAINLAB_MIRROR": str(empty)})
    assert r.returncode == 1 and r.stdout == ""
    assert "train-images-idx3-ubyte.gz" in r.stderr and "TRAINLAB_MIRROR" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args,needle", [
    (["report", "--profile", "turbo", "notebooks/04_weight_initialization.ipynb"], "profile: 'turbo'"),
    (["claims", "--seeds", "0", "notebooks/04_weight_initialization.ipynb"], "seeds: 0"),
    (["claims", "--first-seed", "-1", "notebooks/04_weight_initialization.ipynb"], "first-seed: -1"),
    (["report", "notebooks/no_such.ipynb"], "no such notebook: notebooks/no_such.ipynb"),
])
def test_notebook_commands_check_arguments_before_work(args, needle, tmp_path):
    r = cli(*args, "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and r.stdout == "" and needle in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
