"""Issue 17, process and scheduler faults of a sweep: workers that outlive a killed
parent, an engine contacted when there is nothing to train, bad --scheduler values,
specs that cannot train found only by the engine, and the table of a regression sweep."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trainlab import Spec, SpecError, grid
from trainlab.sweeps import cache_path, sweep

TINY = Spec(subset=600, epochs=1, depth=1, width=16, batch_size=64, optimizer="sgd", lr=0.05, schedule="constant")
# Too big for the machines these tests run on: 200 x 8192^2 weights, over 150 GB with
# gradients and Adam's state.
HUGE = Spec(depth=200, width=8192)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    monkeypatch.setenv("TRAINLAB_RUNS", str(folder))
    return folder


def cli(*args: str, runs: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRAINLAB_PROGRESS": "0", "TRAINLAB_RUNS": str(runs)}
    return subprocess.run([sys.executable, "-m", "trainlab", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


# --- processes on Linux, read from /proc (psutil is not a dependency) ----------------------

def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"  # a zombie has exited; only its entry is left


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _read(path: str) -> str:
    try:
        return Path(path).read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _busy_workers(parent: int) -> list[int]:
    """The parent's pool workers that have loaded torch (so they are at work)."""
    workers = [pid for pid in _children(parent) if "spawn_main" in _read(f"/proc/{pid}/cmdline")]
    return [pid for pid in workers if "libtorch" in _read(f"/proc/{pid}/maps")]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_and_resource_tracker_exit_when_the_sweep_parent_is_killed(mnist_ready, tmp_path):
    # Runs long enough (1000 epochs) that the workers are mid-run when the parent dies.
    args = [sys.executable, "-m", "trainlab", "sweep", "--subset", "2000", "--epochs", "1000", "--depth", "1",
            "--width", "16", "--seeds", "2", "--workers", "2"]
    env = {**os.environ, "TRAINLAB_PROGRESS": "0", "TRAINLAB_RUNS": str(tmp_path / "runs"), "TRAINLAB_THREADS": "1"}
    parent = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while len(_busy_workers(parent.pid)) < 2:
            assert parent.poll() is None, "the sweep ended before its workers started"
            assert time.monotonic() < deadline, "the workers never started"
            time.sleep(0.2)
        time.sleep(3)  # past the worker set-up, into training
        family = _children(parent.pid)  # the two workers and multiprocessing's resource tracker
        assert len(family) >= 3
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in family) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in family if _alive(pid)], "processes outlived the killed sweep"
    finally:
        try:  # whatever is left of the session this test started
            os.killpg(parent.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        parent.wait()


def test_a_worker_stops_when_its_parent_changes_even_without_prctl():
    # The watchdog alone (as where prctl is absent): the parent seems to change after set-up.
    code = ("import os, time, trainlab.workers as w; w._set_parent_death_signal = lambda: False; "
            "w._die_with_parent(os.getppid()); os.getppid = lambda: 1; time.sleep(20); print('survived')")
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "survived" not in done.stdout and "Traceback" not in done.stderr
    assert time.monotonic() - t0 < 15


def test_a_worker_whose_parent_died_during_set_up_stops_at_once():
    code = "import time, trainlab.workers as w; w._die_with_parent(1); time.sleep(20); print('survived')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "survived" not in done.stdout and "Traceback" not in done.stderr


# --- scheduler addresses and cached sweeps -----------------------------------------------

def test_a_fully_cached_sweep_contacts_no_engine(mnist_ready, runs_dir, monkeypatch):
    specs = grid(TINY, seed=[0, 1])
    sweep(specs)

    def contacted(*a, **k):
        raise AssertionError("contacted an engine with nothing to train")
    monkeypatch.setattr("trainlab.workers.on_dask", contacted)
    monkeypatch.setattr("trainlab.workers.local_workers", contacted)
    monkeypatch.setattr("trainlab.workers.in_process", contacted)
    for engine in ({"scheduler": "tcp://127.0.0.1:9"}, {"workers": 2}, {}):
        assert len(sweep(specs, **engine).runs) == 2


def test_cli_fully_cached_sweep_prints_without_the_unreachable_scheduler(mnist_ready, tmp_path):
    flags = ["--subset", "600", "--epochs", "1", "--depth", "1", "--width", "16", "--seeds", "2"]
    assert cli("sweep", *flags, runs=tmp_path).returncode == 0
    t0 = time.monotonic()
    # port 9 (discard) has no scheduler: contacting it would wait out the 20 s connect timeout
    done = cli("sweep", *flags, "--scheduler", "tcp://127.0.0.1:9", runs=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 3 and "Traceback" not in done.stderr
    assert time.monotonic() - t0 < 20


@pytest.mark.parametrize("address", ["notanaddress", "", "tcp://", "host:port", "tcp://host:99999", "ftp://h:1",
                                     "tcp://:8786"])
def test_cli_bad_scheduler_is_one_line_before_work(address, tmp_path):
    done = cli("sweep", "--subset", "600", "--epochs", "1", "--scheduler", address, runs=tmp_path / "runs")
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--scheduler" in lines[0] and repr(address) in lines[0]
    assert "host:port" in lines[0] and "tcp://host:port" in lines[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("address", ["notanaddress", "", 8786])
def test_sweep_refuses_a_bad_scheduler_before_work(address, runs_dir):
    with pytest.raises(SpecError, match="scheduler: .* is not allowed"):
        sweep([TINY], scheduler=address)
    assert not runs_dir.exists()


@pytest.mark.parametrize("address", ["127.0.0.1:8786", "tcp://127.0.0.1:8786", "tcp://sched.local:1",
                                     "tls://10.0.0.2:8786", "tcp://[::1]:8786"])
def test_good_scheduler_addresses_pass(address):
    from trainlab.workers import check_scheduler
    assert check_scheduler(address) == address


# --- specs checked before any run trains -----------------------------------------------------

def test_sweep_checks_every_spec_fits_before_training(runs_dir, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("trained a run of a sweep that cannot finish")
    monkeypatch.setattr("trainlab.train.fit", no_training)
    with pytest.raises(SpecError, match="width: 8192"):
        sweep([TINY, HUGE])
    assert not cache_path(TINY).exists()


def test_cli_sweep_too_big_exits_2_in_one_line_like_run(tmp_path):
    args = ["--depth", "200", "--width", "8192"]
    ran, swept = cli("run", *args, runs=tmp_path), cli("sweep", *args, runs=tmp_path)
    assert ran.returncode == 2
    assert swept.returncode == 2 and swept.stdout == ""
    lines = swept.stderr.strip().splitlines()
    assert len(lines) == 1 and "width: 8192" in lines[0]
    free = re.compile(r"has [\d.]+ \w?B available")  # the memory free changes between the two calls
    assert free.sub("", lines[0]) == free.sub("", ran.stderr.strip())


def test_cli_regression_sweep_prints_rmse_not_accuracy(tmp_path):
    done = cli("sweep", "--dataset", "diabetes", "--epochs", "1", "--lr", "0.01,0.1", runs=tmp_path)
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0].split()
    assert {"val_rmse", "test_rmse", "val_loss"} <= set(header)
    assert not {"train_acc", "val_acc", "test_acc"} & set(header)
    assert "NaN" not in done.stdout and "nan" not in done.stdout
