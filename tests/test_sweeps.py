"""Sweeps in this process, on local workers and on a real Dask cluster; the run cache
under faults; the thread choice."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import trainlab.threads as threads
from trainlab import Spec, SpecError, grid
from trainlab.sweeps import SweepError, cache_path, run_cached, sweep
from trainlab.workers import local_workers

TINY = Spec(subset=600, epochs=1, depth=1, width=16, batch_size=64, optimizer="sgd", lr=0.05, schedule="constant")


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    monkeypatch.setenv("TRAINLAB_RUNS", str(folder))
    return folder


def same_histories(a, b) -> None:
    """Bit-identical step and epoch histories (wall-clock seconds aside)."""
    pd.testing.assert_frame_equal(a.steps, b.steps, check_exact=True)
    pd.testing.assert_frame_equal(a.epochs.drop(columns="seconds"), b.epochs.drop(columns="seconds"),
                                  check_exact=True)
    assert a.final == b.final


# --- threads --------------------------------------------------------------------

def test_threads_follow_the_free_cores(monkeypatch):
    monkeypatch.delenv("TRAINLAB_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(threads, "recent_busy", lambda: 0.1)
    assert threads.choose_threads() == 4
    assert threads.choose_threads(limit=2) == 2
    monkeypatch.setattr(threads, "recent_busy", lambda: 2.7)
    assert threads.choose_threads() == 1
    monkeypatch.setattr(threads, "recent_busy", lambda: 9.0)
    assert threads.choose_threads() == 1  # never below one
    monkeypatch.setenv("TRAINLAB_THREADS", "3")
    assert threads.choose_threads() == 3


def test_runs_started_together_share_the_cores_through_the_ledger(tmp_path, monkeypatch):
    monkeypatch.delenv("TRAINLAB_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_ledger_path", lambda: tmp_path / "ledger.json")
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "recent_busy", lambda: 0.0)  # both measured an idle machine
    neighbour = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with threads._ledger() as claims:
            claims[str(neighbour.pid)] = 2  # it started first and took both cores
        claim = threads.ThreadClaim()
        assert claim.threads == 1
        with threads._ledger() as claims:  # the neighbour gives one back at its next epoch
            claims[str(neighbour.pid)] = 1
        assert claim.rebalance() == 1
    finally:
        neighbour.kill()
        neighbour.wait()
    assert claim.rebalance() == 2  # a dead neighbour's claim is dropped
    claim.release()
    assert json.loads((tmp_path / "ledger.json").read_text()) == {}


@pytest.mark.parametrize("bad", ["0", "-2", "many", "1.5"])
def test_bad_thread_setting_names_it(monkeypatch, bad):
    monkeypatch.setenv("TRAINLAB_THREADS", bad)
    with pytest.raises(SpecError, match=f"TRAINLAB_THREADS: '{bad}' is not allowed; expected 'auto'"):
        threads.choose_threads()


def test_back_to_back_choices_reuse_the_window_since_the_last_one(monkeypatch):
    """A run chosen 0.1-5 s after the previous one measures the time in between
    instead of sleeping; a first choice, or one after a long pause, samples afresh."""
    monkeypatch.delenv("TRAINLAB_THREADS", raising=False)
    sampled = []
    monkeypatch.setattr(threads, "busy_elsewhere", lambda: sampled.append(1) or 0.0)
    monkeypatch.setattr(threads, "_mark", None)
    threads.recent_busy()
    assert len(sampled) == 1                       # nothing to reuse yet
    assert threads.recent_busy() == 0.0 and len(sampled) == 1   # too short a window: the last value
    time.sleep(threads.SAMPLE_SECONDS)
    threads.recent_busy()
    assert len(sampled) == 1                       # the window since the first choice
    mark = threads._mark
    monkeypatch.setattr(threads, "_mark", (mark[0] - threads.REUSE_SECONDS - 1, *mark[1:]))
    threads.recent_busy()
    assert len(sampled) == 2                       # too old: sampled afresh


def test_a_busy_neighbour_is_seen_in_the_reused_window(monkeypatch):
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        monkeypatch.setattr(threads, "_mark", threads._snapshot())
        time.sleep(0.3)
        assert threads.recent_busy() > 0.6
    finally:
        spinner.kill()
        spinner.wait()


def test_a_busy_neighbour_is_seen():
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert threads.busy_elsewhere(0.3) > 0.6
    finally:
        spinner.kill()
        spinner.wait()


def test_thread_count_does_not_change_the_numbers(mnist_ready, monkeypatch):
    from trainlab import fit
    monkeypatch.setenv("TRAINLAB_THREADS", "1")
    one = fit(TINY.replace(optimizer="adam", lr=2e-3, width=64))
    monkeypatch.setenv("TRAINLAB_THREADS", "2")
    two = fit(TINY.replace(optimizer="adam", lr=2e-3, width=64))
    assert (one.extra["threads"], two.extra["threads"]) == (1, 2)
    assert two.extra["threads_by_epoch"] == [2]
    same_histories(one, two)


# --- local workers ----------------------------------------------------------------

@pytest.fixture
def one_thread(monkeypatch):
    """Every run on one thread, here and in every worker: on this AMD CPU a few tiny
    matrix products still round differently at another thread count, so bit-identical
    histories across engines need the same count."""
    monkeypatch.setenv("TRAINLAB_THREADS", "1")


def test_local_workers_give_the_same_runs(mnist_ready, runs_dir, one_thread):
    specs = grid(TINY, seed=[0, 1, 2])
    here = sweep(specs, cache=False)
    there = sweep(specs, workers=2, cache=False)
    for a, b in zip(here.runs, there.runs, strict=True):
        same_histories(a, b)


def test_failed_and_killed_workers_are_reported_and_the_rest_finish(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    from sweep_tasks import echo_or_fail
    outcomes = {spec.seed: (result, error)
                for spec, result, error in local_workers(grid(TINY, seed=range(6)), 2, task=echo_or_fail)}
    assert sorted(outcomes) == [0, 1, 2, 3, 4, 5]
    assert "ValueError: bad luck on seed 1" == outcomes[1][1]
    assert outcomes[2][0] is None and "worker died" in outcomes[2][1]
    for seed in (0, 3, 4, 5):  # innocent runs in flight when the worker died were retried
        assert outcomes[seed] == ((seed, threads.worker_share(2)), None)


def test_a_failed_run_keeps_the_finished_ones_cached(mnist_ready, runs_dir, mirror, monkeypatch):
    monkeypatch.setenv("TRAINLAB_MIRROR", str(mirror))  # holds no CIFAR-10: that run fails
    good = grid(TINY, seed=[0, 1])
    with pytest.raises(SweepError) as e:
        sweep([good[0], TINY.replace(dataset="cifar10"), good[1]], workers=2)
    assert len(e.value.failures) == 1 and "cifar" in str(e.value) and "DataError" in str(e.value)
    assert len(e.value.partial.runs) == 2 and all(cache_path(s).is_file() for s in good)

    def no_training(*a, **k):
        raise AssertionError("trained a run that was cached")
    monkeypatch.setattr("trainlab.train.fit", no_training)
    assert len(sweep(good).runs) == 2  # the rerun trains nothing


def test_bad_workers_value_is_refused_before_work():
    with pytest.raises(SpecError, match="workers: 0 is not allowed"):
        sweep([TINY], workers=0)


# --- the run cache under faults -------------------------------------------------------

def test_corrupt_cached_run_is_moved_aside_and_retrained(mnist_ready, runs_dir):
    path = cache_path(TINY)
    path.parent.mkdir(parents=True)
    path.write_text('{"spec": {"lr": 0.1}, "steps": [1, 2')  # truncated
    with pytest.warns(UserWarning, match=str(path.name)):
        run = run_cached(TINY)
    assert not run.diverged and json.loads(path.read_text())["spec"]["lr"] == TINY.lr
    assert len(list((path.parent / "corrupt").iterdir())) == 1


def test_unwritable_run_cache_fails_before_training(mnist_ready, tmp_path, monkeypatch):
    from trainlab.storage import StorageError
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("TRAINLAB_RUNS", str(blocker / "runs"))

    def no_training(*a, **k):
        raise AssertionError("trained before checking the cache folder")
    monkeypatch.setattr("trainlab.train.fit", no_training)
    with pytest.raises(StorageError, match="TRAINLAB_RUNS"):
        sweep([TINY])
    with pytest.raises(StorageError, match=str(blocker / "runs")):
        run_cached(TINY)


# --- a real Dask cluster and the CLI ---------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path, one_thread):
    """A scheduler and two single-thread workers, each its own process on 127.0.0.1."""
    dask = str(Path(sys.executable).with_name("dask"))
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, TRAINLAB_PROGRESS="0", TRAINLAB_THREADS="1")
    log = open(tmp_path / "dask.log", "w")
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=log, stderr=log, env=env)]
    procs += [subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                "--host", "127.0.0.1", "--name", f"w{i}"], stdout=log, stderr=log, env=env)
              for i in range(2)]
    from distributed import Client
    client = Client(address, timeout="30s")
    client.wait_for_workers(2, timeout=60)
    try:
        yield client, procs[1:]
    finally:
        client.close()
        for p in procs[::-1]:
            p.kill()
            p.wait()
        log.close()


def test_dask_cluster_gives_the_same_runs_and_survives_a_killed_worker(mnist_ready, runs_dir, cluster):
    client, workers = cluster
    specs = grid(TINY.replace(epochs=3, subset=3000), seed=range(6))
    arrived: list[float] = []

    def kill_after_first_result():
        while not list(runs_dir.glob("*.json")):
            time.sleep(0.05)
        arrived.append(time.perf_counter())
        workers[0].kill()

    watcher = threading.Thread(target=kill_after_first_result, daemon=True)
    watcher.start()
    remote = sweep(specs, scheduler=client)
    finished = time.perf_counter()
    watcher.join(5)
    assert workers[0].poll() is not None  # the worker really died mid-sweep
    assert arrived and arrived[0] < finished  # runs were cached as they arrived
    assert len(remote.runs) == 6 and all(cache_path(s).is_file() for s in specs)
    for spec, run in zip(specs, remote.runs, strict=True):
        same_histories(run, sweep([spec], cache=False).runs[0])


def _cli_sweep(*extra: str, runs: Path) -> dict:
    args = [sys.executable, "-m", "trainlab", "sweep", "--subset", "600", "--epochs", "1", "--depth", "1",
            "--width", "16", "--optimizer", "sgd", "--lr", "0.05,0.2", "--schedule", "constant", "--seeds", "2",
            "--json", *extra]
    done = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, TRAINLAB_RUNS=str(runs)))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_cli_sweep_is_the_same_in_process_on_workers_and_on_dask(mnist_ready, tmp_path, cluster):
    client, _ = cluster
    here = _cli_sweep(runs=tmp_path / "a")
    assert len(here["runs"]) == 4
    assert {(r["spec"]["lr"], r["spec"]["seed"]) for r in here["runs"]} == {(0.05, 0), (0.05, 1), (0.2, 0), (0.2, 1)}
    for other in (_cli_sweep("--workers", "2", runs=tmp_path / "b"),
                  _cli_sweep("--scheduler", client.scheduler.address, runs=tmp_path / "c")):
        assert [r["final"] for r in other["runs"]] == [r["final"] for r in here["runs"]]
        assert [r["spec"] for r in other["runs"]] == [r["spec"] for r in here["runs"]]


def test_cli_sweep_stacked_matches_the_sweep_in_process(mnist_ready, tmp_path):
    here = _cli_sweep(runs=tmp_path / "a")
    stacked = _cli_sweep("--stacked", runs=tmp_path / "b")
    assert [r["spec"] for r in stacked["runs"]] == [r["spec"] for r in here["runs"]]
    for a, b in zip(here["runs"], stacked["runs"]):
        assert b["final"]["val_acc"] == pytest.approx(a["final"]["val_acc"], abs=1e-3)


@pytest.mark.parametrize("flags, field", [
    (["--lr", "0.1,abc"], "lr"), (["--workers", "0"], "workers"), (["--seeds", "2", "--seed", "1"], "seeds"),
    (["--optimizer", "nesterov"], "momentum"), (["--betas", "0.9,0.999;0.9,1.5"], "betas"),
])
def test_cli_sweep_rejects_bad_values_in_one_line(flags, field):
    done = subprocess.run([sys.executable, "-m", "trainlab", "sweep", *flags], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and f"{field}:" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_sweep_combines_fields_that_only_hold_together(runs_dir, mnist_ready):
    specs = grid(Spec(), optimizer=["nesterov"], momentum=[0.9])
    assert specs[0].optimizer == "nesterov" and specs[0].momentum == 0.9


def test_claims_over_seeds_runs_notebooks_in_parallel(tmp_path, monkeypatch, capsys):
    from notebook_factory import write_notebook
    from trainlab.report import claims_over_seeds
    monkeypatch.delenv("TRAINLAB_THREADS", raising=False)
    monkeypatch.delenv("TRAINLAB_CLAIMS_DIR", raising=False)
    (tmp_path / "nbs").mkdir()
    path = write_notebook(
        tmp_path / "nbs" / "tiny.ipynb",
        "import os, time\nfrom trainlab.claims import Claims\n"
        "claims = Claims('tiny', profile=profile, seed=seed)\n"
        "claims.check('kernel threads are its share', int(os.environ['TRAINLAB_THREADS']), '<=', 1)\n"
        "claims.check('seed below 1', seed, '<', 1)\n"
        "claims.report()")
    monkeypatch.chdir(tmp_path)
    code = claims_over_seeds([path], "smoke", [0, 1], Path("out"), workers=2,  # relative, as `make claims` passes
                             datasets=("mnist",))
    out = capsys.readouterr().out
    assert code == 1  # 'seed below 1' fails on seed 1, and the summary says so
    assert "ok      tiny mnist seed 0" in out and "FAILED  tiny mnist seed 1" in out
    from trainlab.report import summarize_claims
    summary = summarize_claims(tmp_path / "out" / "claims", "smoke").loc["tiny"]
    assert not (tmp_path / "nbs" / "out").exists()  # not where the kernels ran
    assert summary.loc["kernel threads are its share", ["held", "seeds"]].tolist() == [2, 2]
    assert summary.loc["seed below 1", ["held", "seeds"]].tolist() == [1, 2]


def test_a_start_model_is_cached_apart_under_its_tag(mnist_ready, runs_dir):
    """`start` trains given weights instead of the spec's init; its tag keeps that run
    apart from the plain one and from other starts, and `model=True` brings it back."""
    import torch
    from trainlab import build_model
    from trainlab.data import LAYOUT

    def start():
        torch.manual_seed(123)
        return build_model(TINY, LAYOUT["mnist"][0], 10)

    plain = run_cached(TINY)
    started = run_cached(TINY, model=True, start=start, start_tag="seed 123")
    assert cache_path(TINY, "seed 123") != cache_path(TINY) and cache_path(TINY, "seed 123").is_file()
    assert started.final != plain.final
    again = run_cached(TINY, model=True, start=lambda: pytest.fail("trained again"), start_tag="seed 123")
    assert again.final == started.final and torch.equal(again.model.fc1.weight.cpu(), started.model.fc1.weight.cpu())
    with pytest.raises(SpecError, match="start_tag"):
        run_cached(TINY, start=start)
