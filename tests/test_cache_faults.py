"""The run cache, the dataset cache and the claims/report outputs under disk and file
faults (issue 17): racing first fetches, a full disk, a read-only cache, torn and
misplaced files, flipped bits, stale and torn claims records, an output path that is
a file. Each test fails on the code as it was before the fix."""
from __future__ import annotations

import collections
import errno
import json
import multiprocessing as mp
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
import trainlab.datasets as data_mod
from trainlab import sweeps
from trainlab.claims import Claims
from trainlab.run import CorruptRunFile, Run
from trainlab.spec import Spec
from trainlab.storage import StorageError
from trainlab.sweeps import cache_path, load_cached, run_cached

TINY = Spec(subset=300, epochs=1, depth=1, width=16, batch_size=50)
Usage = collections.namedtuple("Usage", "total used free")


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    monkeypatch.setenv("TRAINLAB_RUNS", str(folder))
    return folder


def free_space(monkeypatch, free: int) -> None:
    """Make every folder report `free` bytes free."""
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10 ** 12, 10 ** 12 - free, free))


def no_training(*args, **kwargs):
    raise AssertionError("trained a run that should have come from the cache, or before a check")


def read_only(monkeypatch, folder: Path) -> None:
    """Make `folder` behave like a read-only mount: creating, renaming or removing
    anything in it fails with EROFS (chmod is no test here: the tests may run as root)."""
    folder = str(folder)

    def guard(real, name_arg=0):
        def call(*args, **kwargs):
            path = str(args[name_arg]) if len(args) > name_arg else ""
            flags = args[1] if real is os.open and len(args) > 1 else os.O_WRONLY
            writes = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            if path.startswith(folder) and writes:
                raise OSError(errno.EROFS, "Read-only file system", path)
            return real(*args, **kwargs)
        return call
    monkeypatch.setattr(os, "open", guard(os.open))
    monkeypatch.setattr(os, "mkdir", guard(os.mkdir))
    monkeypatch.setattr(os, "replace", guard(os.replace))
    monkeypatch.setattr(os, "rename", guard(os.rename))
    monkeypatch.setattr(os, "unlink", guard(os.unlink))


# --- the run cache: read-only, torn, misplaced and unmovable entries ------------------

def test_read_only_cache_with_a_torn_file_retrains_without_caching(mnist_ready, runs_dir, monkeypatch):
    path = cache_path(TINY)
    path.parent.mkdir(parents=True)
    path.write_text('{"spec": {"lr": 0.1}, "steps": [1, 2')  # torn
    read_only(monkeypatch, runs_dir)
    for _ in range(2):  # and the next call is not blocked either
        with pytest.warns(UserWarning) as caught:
            run = run_cached(TINY)
        assert run.spec == TINY and not run.diverged
        said = " | ".join(str(w.message) for w in caught)
        assert path.name in said and "could not move it aside" in said and "without caching" in said
    assert path.read_text().startswith('{"spec": {"lr": 0.1}')  # left where it was: nothing could move it


def test_two_corruptions_of_one_key_within_a_second_keep_both_files(runs_dir, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda *a: "20250101-000000")  # one second, frozen
    path = cache_path(TINY)
    path.parent.mkdir(parents=True)
    for torn in ('{"spec": 1', '{"steps": ['):
        path.write_text(torn)
        with pytest.warns(UserWarning, match=re.escape(path.name)):
            assert load_cached(path) is None
    kept = sorted(p.read_text() for p in (runs_dir / "corrupt").iterdir())
    assert kept == ['{"spec": 1', '{"steps": [']


def test_an_entry_that_is_a_directory_is_moved_aside_and_retrained(mnist_ready, runs_dir, monkeypatch):
    path = cache_path(TINY)
    (path / "inside").mkdir(parents=True)
    with pytest.warns(UserWarning, match=re.escape(path.name)):
        run = run_cached(TINY)
    assert path.is_file() and Run.load(path).final == run.final
    monkeypatch.setattr("trainlab.train.fit", no_training)
    assert run_cached(TINY).final == run.final  # not blocked: the next call loads it


def test_deeply_nested_json_is_a_corrupt_run_file(runs_dir, tmp_path):
    path = tmp_path / "nested.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CorruptRunFile, match="nested"):
        Run.load(path)
    cached = cache_path(TINY)
    cached.parent.mkdir(parents=True)
    shutil.copy(path, cached)
    with pytest.warns(UserWarning, match=re.escape(cached.name)):
        assert load_cached(cached) is None
    assert not cached.exists() and len(list((runs_dir / "corrupt").iterdir())) == 1


def test_a_corrupt_folder_that_is_a_file_does_not_block_the_spec(mnist_ready, runs_dir, monkeypatch):
    path = cache_path(TINY)
    path.parent.mkdir(parents=True)
    (runs_dir / "corrupt").write_text("a file where the folder should be")
    path.write_text('{"spec": {"lr": 0.1}, "steps": [1, 2')
    with pytest.warns(UserWarning, match=re.escape(path.name)):
        run = run_cached(TINY)
    assert Run.load(path).final == run.final  # the torn file was replaced by the new run
    monkeypatch.setattr("trainlab.train.fit", no_training)
    assert run_cached(TINY).final == run.final


# --- the run cache on a full disk ---------------------------------------------------------

def test_too_little_space_for_a_run_stops_before_training(runs_dir, monkeypatch):
    free_space(monkeypatch, 900)
    monkeypatch.setattr("trainlab.train.fit", no_training)
    with pytest.raises(StorageError) as e:
        run_cached(TINY, model=True)
    message = str(e.value)
    assert "\n" not in message and str(runs_dir) in message and "TRAINLAB_RUNS" in message
    assert "900 B free" in message and re.search(r"needs about [\d.]+ [kM]B", message)
    with pytest.raises(StorageError, match=re.escape(str(runs_dir))):  # a sweep checks before it trains, too
        sweeps.sweep([TINY, TINY.replace(seed=1)])


@pytest.mark.parametrize("model", [False, True])
def test_a_full_disk_while_saving_returns_the_run_uncached(mnist_ready, runs_dir, monkeypatch, model):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.warns(UserWarning, match=re.escape(str(runs_dir)) + ".*no space left") as caught:
        run = run_cached(TINY, model=model)
    assert run.spec == TINY and not run.diverged and (run.model is not None or not model)
    assert any("needs about" in str(w.message) for w in caught)
    assert list(runs_dir.iterdir()) == []  # nothing half-written left behind


# --- the run cache: flipped bits in weights, another spec's run -------------------------

def _flip_a_weight_bit(pt: Path, state: dict) -> None:
    """Flip one bit inside a weight tensor's stored bytes: the file still loads."""
    data = bytearray(pt.read_bytes())
    weight = next(t for k, t in state.items() if k.endswith("weight"))
    needle = weight.contiguous().numpy().tobytes()[:64]
    at = data.find(needle)
    assert at > 0, "the weight's bytes are stored as they are"
    data[at + 3] ^= 0x10
    pt.write_bytes(bytes(data))


def test_flipped_bits_in_saved_weights_are_caught_and_retrained(mnist_ready, runs_dir):
    first = run_cached(TINY, model=True)
    state = {k: v.detach().cpu() for k, v in first.model.state_dict().items()}
    pt = cache_path(TINY).with_suffix(".pt")
    _flip_a_weight_bit(pt, state)
    with pytest.warns(UserWarning, match="weights.*sha256"):
        again = run_cached(TINY, model=True)
    x = torch.randn(4, 1, 28, 28)
    first.model.eval(), again.model.eval()
    assert torch.equal(first.model(x), again.model(x))  # retrained, not the damaged weights
    assert len(list((runs_dir / "corrupt").iterdir())) == 1


def test_a_cache_file_holding_another_specs_run_is_not_served(mnist_ready, runs_dir):
    other = TINY.replace(lr=0.05)
    run_cached(TINY)
    shutil.copy(cache_path(TINY), cache_path(other))  # e.g. copied over by hand, or a key collision
    with pytest.warns(UserWarning, match="another spec"):
        run = run_cached(other)
    assert run.spec == other and Run.load(cache_path(other)).spec == other


# --- the dataset cache: racing first fetches, a full disk --------------------------------

RACERS = 4


def _fetch_racer(root: str, marks: str, barrier, results) -> None:
    """One of several first fetches at once: `fetch mnist` through the CLI, noting how
    many other processes were building the dataset at the same moment."""
    os.environ["TRAINLAB_DATA"] = root
    import trainlab.datasets as ds
    from trainlab.cli import main
    build = ds._build

    def watched_build(name, where):
        mark = Path(marks) / str(os.getpid())
        mark.touch()
        time.sleep(1.0)  # a window in which every other builder would be seen
        others = len(list(Path(marks).iterdir())) - 1
        with open(Path(marks).parent / "builds.log", "a") as log:
            log.write(f"{others}\n")
        try:
            return build(name, where)
        finally:
            mark.unlink()
    ds._build = watched_build
    barrier.wait()
    results.put(main(["fetch", "mnist"]))


def test_concurrent_first_fetches_build_once_and_all_succeed(tmp_path, mirror, monkeypatch):
    monkeypatch.setenv("TRAINLAB_MIRROR", str(mirror))
    (tmp_path / "marks").mkdir()
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(RACERS), ctx.Queue()
    racers = [ctx.Process(target=_fetch_racer, args=(str(tmp_path / "data"), str(tmp_path / "marks"),
                                                     barrier, results)) for _ in range(RACERS)]
    for r in racers:
        r.start()
    codes = [results.get(timeout=300) for _ in racers]
    for r in racers:
        r.join(timeout=60)
    assert codes == [0] * RACERS
    assert (tmp_path / "builds.log").read_text() == "0\n"  # one builder; the others read its cache
    cache = tmp_path / "data" / "cache" / f"mnist.v{data_mod.CACHE_VERSION}.pt"
    assert torch.load(cache, weights_only=True)["train_x"].shape == (60_000, 1, 28, 28)


def test_the_lock_takes_turns_and_leaves_no_file(tmp_path):
    import threading

    from trainlab.storage import exclusive_lock
    lock, events = tmp_path / ".mnist.lock", []

    def second():
        with exclusive_lock(lock):  # waits for the first, whose file is gone by then
            events.append(("second holds the file at the path", lock.exists()))
    with exclusive_lock(lock):
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.3)
        events.append(("first done", True))
    waiter.join(timeout=10)
    assert events == [("first done", True), ("second holds the file at the path", True)]
    assert not lock.exists()


def _tiny_tensors(*args) -> dict:
    return {"train_x": torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "train_y": torch.zeros(2, dtype=torch.long),
            "test_x": torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "test_y": torch.zeros(2, dtype=torch.long)}


def test_too_little_space_for_a_dataset_stops_before_building(fresh_root, monkeypatch):
    free_space(monkeypatch, 5_000_000)
    monkeypatch.setattr(data_mod, "_build", lambda *a: pytest.fail("built the dataset on a full disk"))
    with pytest.raises(StorageError) as e:
        data_mod.fetch("mnist")
    message = str(e.value)
    assert "\n" not in message and str(fresh_root) in message and "TRAINLAB_DATA" in message
    assert "5.0 MB free" in message and re.search(r"needs about [\d.]+ MB", message)


WRITE_FAILURES = {
    "torch": RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed "
                          "writing file data/0: file write failed"),
    "enospc": OSError(errno.ENOSPC, "No space left on device"),
}


@pytest.mark.parametrize("failure", sorted(WRITE_FAILURES))
def test_a_dataset_cache_write_on_a_full_disk_is_one_line(fresh_root, monkeypatch, failure):
    free_space(monkeypatch, 500_000_000)  # enough by the estimate; the write fails anyway

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise WRITE_FAILURES[failure]
    monkeypatch.setattr(data_mod, "_build", _tiny_tensors)
    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(StorageError) as e:
        data_mod.fetch("mnist")
    message = str(e.value)
    cache = fresh_root / "cache"
    assert "\n" not in message and str(cache) in message and re.search(r"needs about [\d.]+ MB", message)
    assert "TRAINLAB_DATA" in message and list(cache.iterdir()) == []  # no temp file left


# --- claims and report outputs -------------------------------------------------------------

def _claims(notebook: str, seed: int, dataset: str = "mnist", value: float = 2.0, profile: str = "smoke") -> Claims:
    c = Claims(notebook, profile, seed, dataset=dataset)
    c.check("1. big enough", value, ">", 1.0)
    return c


def test_a_claims_record_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_CLAIMS_DIR", str(tmp_path))
    _claims("01_nb", 0).report()
    (record,) = tmp_path.iterdir()
    before = record.read_text()

    def io_error(fd):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(os, "fsync", io_error)  # the disk fails while the new record is written
    with pytest.raises(OSError, match="Input/output"):
        _claims("01_nb", 0, value=3.0).report()
    assert record.read_text() == before and list(tmp_path.iterdir()) == [record]


def test_summarize_claims_skips_an_unreadable_record_with_a_warning(tmp_path, monkeypatch):
    from trainlab.report import summarize_claims
    monkeypatch.setenv("TRAINLAB_CLAIMS_DIR", str(tmp_path))
    _claims("01_nb", 0).report()
    torn = tmp_path / "01_nb-smoke-mnist-seed1.json"
    torn.write_text('{"notebook": "01_nb", "claims": [{"cl')
    with pytest.warns(UserWarning, match=re.escape(str(torn))):
        summary = summarize_claims(tmp_path, "smoke")
    assert summary.loc[("01_nb", "1. big enough"), "seeds"] == 1


def _fake_execution(notebook: Path, out_dir: Path, parameters: dict) -> float:
    """Stands in for papermill: records the notebook's claims as its last cell would,
    or fails before it (seed 7)."""
    if parameters["seed"] == 7:
        raise RuntimeError("the kernel died before the claims cell")
    _claims(notebook.stem, parameters["seed"], parameters["dataset"], profile=parameters["profile"]).report()
    return 0.1


@pytest.fixture
def in_threads(tmp_path, monkeypatch):
    """claims_over_seeds without kernels or worker processes."""
    import concurrent.futures

    from trainlab import report
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor",
                        lambda workers, mp_context=None: ThreadPoolExecutor(workers))
    monkeypatch.setattr(report, "_execute_one", _fake_execution)
    monkeypatch.setenv("TRAINLAB_CLAIMS_DIR", "restored after the test")
    monkeypatch.setenv("TRAINLAB_THREADS", "1")
    return tmp_path / "out"


def test_claims_over_seeds_counts_only_the_runs_of_this_call(in_threads, capsys):
    from trainlab.report import claims_over_seeds
    claims_dir = in_threads / "claims"
    claims_dir.mkdir(parents=True)
    # An earlier call with more seeds left a failing record, and a torn one.
    (claims_dir / "01_nb-smoke-mnist-seed1.json").write_text(json.dumps(
        {"notebook": "01_nb", "profile": "smoke", "dataset": "mnist", "seed": 1,
         "claims": _claims("01_nb", 1, value=0.5).rows}))
    (claims_dir / "01_nb-smoke-mnist-seed2.json").write_text('{"notebook": "01_nb", "cla')
    assert claims_over_seeds([Path("01_nb.ipynb")], "smoke", [0], in_threads, workers=1, datasets=("mnist",)) == 0
    out = capsys.readouterr().out
    assert "ok      01_nb mnist seed 0: 1/1 claims held" in out
    assert re.search(r"1\. big enough\s+1\s+1\s", out)  # held 1 of 1 run: the stale seeds are not counted


def test_claims_over_seeds_never_reports_a_stale_record_for_a_run_that_failed(in_threads, capsys):
    from trainlab.report import claims_over_seeds
    claims_dir = in_threads / "claims"
    claims_dir.mkdir(parents=True)
    stale = claims_dir / "01_nb-smoke-mnist-seed7.json"
    stale.write_text(json.dumps({"notebook": "01_nb", "profile": "smoke", "dataset": "mnist", "seed": 7,
                                 "claims": _claims("01_nb", 7).rows}))
    assert claims_over_seeds([Path("01_nb.ipynb")], "smoke", [7], in_threads, workers=1, datasets=("mnist",)) == 1
    out = capsys.readouterr().out
    assert "FAILED  01_nb mnist seed 7: no claims recorded" in out and "1/1" not in out
    assert not stale.exists()


@pytest.mark.parametrize("command", ["report", "claims"])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, monkeypatch, capsys, command):
    from trainlab import report
    from trainlab.cli import main
    notebook = tmp_path / "01_nb.ipynb"
    notebook.write_text("{}")
    out = tmp_path / "reports"
    out.write_text("a file, not a folder")
    monkeypatch.setattr(report, "report", lambda *a, **k: pytest.fail("worked on a bad --out"))
    monkeypatch.setattr(report, "claims_over_seeds", lambda *a, **k: pytest.fail("worked on a bad --out"))
    assert main([command, "--out", str(out), str(notebook)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out" in err and str(out) in err


def _executed_notebook(path: Path, **parameters) -> Path:
    import nbformat
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in parameters.items()))
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# 01 · A lesson"), cell]
    nbformat.write(nb, path)
    return path


def test_the_gallery_finds_claims_recorded_with_a_dataset(tmp_path, monkeypatch):
    from trainlab.gallery import Entry, write_index
    claims_dir = tmp_path / "claims"
    monkeypatch.setenv("TRAINLAB_CLAIMS_DIR", str(claims_dir))
    _claims("01_nb", 0, "mnist").report()
    with pytest.raises(AssertionError, match="1 of 1 claims failed"):  # recorded, then raised
        _claims("01_nb", 0, "fashion_mnist", value=0.5).report()
    _claims("01_nb_other", 0, "mnist").report()  # another notebook whose name starts the same
    plain = Entry.read(_executed_notebook(tmp_path / "01_nb.ipynb", profile="smoke", seed=0), 1.0,
                       claims_dir=claims_dir)
    assert len(plain.claims) == 1
    fashion = Entry.read(_executed_notebook(tmp_path / "01_nb.ipynb", profile="smoke", seed=0,
                                            dataset="fashion_mnist"), 1.0, claims_dir=claims_dir)
    assert fashion.held == 0 and len(fashion.claims) == 1
    mnist = Entry.read(_executed_notebook(tmp_path / "01_nb.ipynb", profile="smoke", seed=0, dataset="mnist"),
                       1.0, claims_dir=claims_dir)
    assert mnist.held == 1
    page = write_index(tmp_path, [mnist]).read_text()
    assert "claims held: <strong>1 / 1</strong>" in page and "not recorded" not in page


# --- the same faults under sweep(): it goes on, and never serves another spec's run ----

def test_a_sweep_in_a_read_only_cache_with_a_torn_entry_trains_uncached(mnist_ready, runs_dir, monkeypatch):
    torn = cache_path(TINY)
    torn.parent.mkdir(parents=True)
    torn.write_text('{"spec": {"lr": 0.1}, "steps": [1, 2')
    read_only(monkeypatch, runs_dir)
    with pytest.warns(UserWarning, match="without caching"):
        result = sweeps.sweep([TINY, TINY.replace(lr=0.05)], progress=False)
    assert [r.spec for r in result.runs] == [TINY, TINY.replace(lr=0.05)]


def test_a_sweep_on_a_full_disk_keeps_every_run(mnist_ready, runs_dir, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "replace", disk_full)
    specs = [TINY, TINY.replace(lr=0.05), TINY.replace(lr=0.01)]
    with pytest.warns(UserWarning, match="no space left"):
        result = sweeps.sweep(specs, progress=False)
    assert [r.spec for r in result.runs] == specs  # the second and third runs were not lost to the first's file


def test_a_sweep_never_serves_another_specs_run(mnist_ready, runs_dir):
    other = TINY.replace(lr=0.05)
    run_cached(TINY)
    cache_path(other).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(cache_path(TINY), cache_path(other))
    with pytest.warns(UserWarning, match="another spec"):
        result = sweeps.sweep([TINY, other], progress=False)
    assert [r.spec for r in result.runs] == [TINY, other]
