"""Saved runs and claims survive races, torn files, NaNs and sweeps without a
validation set: the failures that used to surface only after the training was done."""
import json
import math
import multiprocessing as mp
import os

import pandas as pd
import pytest

# Only modules that do not load torch at the top: the racing savers are fresh processes
# that import this file, and eight torch imports on two cores would take longer than the race.
from trainlab.claims import Claims
from trainlab.report import summarize_claims
from trainlab.run import CorruptRunFile, Run
from trainlab.spec import Spec

TINY = Spec(subset=500, epochs=1, depth=1, width=16, batch_size=50)
SAVERS, SAVES_EACH = 8, 50


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path / "runs"))


def hand_made_run(rows: int = 300) -> Run:
    """A run with every column kind a real one has, without training: big enough that
    writing it takes a while, so racing savers overlap."""
    steps = pd.DataFrame({"step": range(rows), "epoch": [1 + i // 100 for i in range(rows)],
                          "loss": [1 / (i + 1) for i in range(rows)], "lr": 0.01,
                          "grad_norm": [0.5 + i / rows for i in range(rows)],
                          "clipped": [i % 3 == 0 for i in range(rows)]})
    epochs = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [0.9, 0.5, 0.4], "val_acc": [0.7, 0.8, 0.85]})
    return Run(TINY, steps, epochs, {"train_loss": 0.4, "val_acc": 0.85}, False, 3, 1.5, "cpu")


def _save_and_read(saved: dict, path: str, barrier, errors) -> None:
    """One racing process: save the run again and again, reading the file back each time."""
    run = Run.from_dict(saved)
    barrier.wait()  # start together, or the first process is done before the last has begun
    failures = []
    for _ in range(SAVES_EACH):
        try:
            run.save(path)
            Run.load(path)
        except Exception as e:  # noqa: BLE001 - every kind of failure is the finding
            failures.append(f"{type(e).__name__}: {e}")
    errors.put(failures)


def test_racing_saves_of_one_run_never_fail_or_tear(tmp_path):
    path = tmp_path / "runs" / "same.json"
    ctx = mp.get_context("spawn")  # no fork of a process that has torch threads running
    barrier, errors = ctx.Barrier(SAVERS), ctx.Queue()
    saved = hand_made_run().to_dict()
    workers = [ctx.Process(target=_save_and_read, args=(saved, str(path), barrier, errors))
               for _ in range(SAVERS)]
    for w in workers:
        w.start()
    failures = [f for _ in workers for f in errors.get(timeout=120)]
    for w in workers:
        w.join(timeout=60)
    assert failures == [], f"{len(failures)} of {SAVERS * SAVES_EACH} saves failed, e.g. {failures[:3]}"
    assert [p.name for p in path.parent.iterdir()] == ["same.json"]  # no temp file left behind
    json.loads(path.read_text())  # strict JSON, whole
    pd.testing.assert_frame_equal(Run.load(path).steps, hand_made_run().steps)


def test_a_failed_save_leaves_no_temp_file(tmp_path, monkeypatch):
    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        hand_made_run(5).save(tmp_path / "r.json")
    assert list(tmp_path.iterdir()) == []


def test_a_saved_run_is_readable_by_the_group_as_the_umask_allows(tmp_path):
    umask = os.umask(0o022)
    try:
        path = hand_made_run(5).save(tmp_path / "r.json")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644  # not the 0600 of a bare mkstemp


@pytest.mark.parametrize("text,problem", [
    ('{"spec": {"lr": 0.01}, "steps": {"columns": ["st', "not valid JSON"),  # truncated mid-write
    ("", "not valid JSON"),
    ('{"spec": {}, "final": {}}', "missing the key(s) steps, epochs, diverged"),
    ("[1, 2]", "JSON list"),
])
def test_loading_a_corrupt_run_names_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "torn.json"
    path.write_text(text)
    with pytest.raises(CorruptRunFile) as e:
        Run.load(path)
    assert str(path) in str(e.value) and problem in str(e.value)
    assert isinstance(e.value, ValueError) and e.value.path == path


@pytest.mark.parametrize("spoil,problem", [
    (lambda d: d.update(final=[0.5]), "do not make a run"),
    (lambda d: d["spec"].update(depth=-3), "do not make a run.*depth"),
    (lambda d: d["steps"].update(dtypes=d["steps"].get("dtypes", [])[:-1]), "columns but"),
])
def test_loading_a_run_whose_contents_do_not_fit_is_corrupt(tmp_path, spoil, problem):
    d = hand_made_run(5).to_dict()
    spoil(d)
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(d))
    with pytest.raises(CorruptRunFile, match=problem):
        Run.load(path)
    with pytest.raises(FileNotFoundError):  # missing is not corrupt: nothing to move aside
        Run.load(tmp_path / "absent.json")


def test_a_round_trip_keeps_every_frame_and_dtype(tmp_path, mnist_ready):
    from trainlab import fit
    run = fit(TINY.replace(clip_norm=1.0, probe_every=5), progress=False)
    assert run.steps["clipped"].dtype == bool and run.probes is not None and len(run.probes)
    back = Run.load(run.save(tmp_path / "r.json"))
    for name in ("steps", "epochs", "probes"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(run, name))  # dtypes included
    assert back.final == run.final


def test_a_round_trip_keeps_nan_and_odd_columns(tmp_path):
    # A diverged step has a NaN loss, an inf grad norm and no `clipped` entry.
    steps = pd.DataFrame([{"step": 0, "loss": 2.3, "grad_norm": 1.0, "clipped": True, "note": "a"},
                          {"step": 1, "loss": math.nan, "grad_norm": math.inf}])
    run = Run(TINY, steps, pd.DataFrame({"epoch": [1], "val_acc": [math.nan]}),
              {"val_acc": math.nan}, True, 0, 0.1, "cpu")
    path = run.save(tmp_path / "diverged.json")
    assert "NaN" not in path.read_text() and "Infinity" not in path.read_text()  # strict JSON
    back = Run.load(path)
    expected = steps.assign(grad_norm=[1.0, math.nan])  # inf was saved as null
    pd.testing.assert_frame_equal(back.steps, expected)
    pd.testing.assert_frame_equal(back.epochs, run.epochs)
    assert math.isnan(back.final["val_acc"])


def _report(claims: Claims) -> None:
    try:
        claims.report()
    except AssertionError:
        pass  # a failing claim still leaves its numbers on disk


def test_claims_json_is_strict_and_a_claim_nan_on_every_seed_fails_everywhere(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_CLAIMS_DIR", str(tmp_path))
    for seed in range(3):
        c = Claims("nb", "smoke", seed)
        c.check("learns", 0.8 + seed / 100, ">", 0.75)
        c.check("diverges gracefully", math.nan, "<", 1.0)
        c.check("no overflow", 0.5, "<", math.inf)
        _report(c)
    for f in tmp_path.glob("*.json"):
        saved = json.loads(f.read_text(), parse_constant=lambda c: pytest.fail(f"{f.name} holds {c}"))
        json.dumps(saved, allow_nan=False)
        assert saved["claims"][1]["measured"] is None
    s = summarize_claims(tmp_path, "smoke")
    nan_claim = s.loc[("nb", "diverges gracefully")]
    assert nan_claim["held"] == 0 and nan_claim["seeds"] == 3 and math.isnan(nan_claim["worst"])
    assert s.loc[("nb", "learns"), "held"] == 3 and s.loc[("nb", "learns"), "worst"] == 0.8
    assert s.loc[("nb", "learns"), "min_margin"] == pytest.approx(0.05)
    assert s.loc[("nb", "no overflow"), "held"] == 3
    assert list(s.index) == [("nb", "learns"), ("nb", "diverges gracefully"), ("nb", "no overflow")]


def test_claims_summary_counts_a_nan_seed_as_the_worst(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_CLAIMS_DIR", str(tmp_path))
    for seed, value in enumerate([0.9, math.nan, 0.6]):
        c = Claims("nb", "smoke", seed)
        c.check("learns", value, ">", 0.5)
        _report(c)
    s = summarize_claims(tmp_path, "smoke")
    assert s.loc[("nb", "learns"), "held"] == 2 and math.isnan(s.loc[("nb", "learns"), "worst"])
    assert summarize_claims(tmp_path, "full").empty  # no notebook got as far as its claims


NO_VAL = pd.DataFrame({"lr": [0.01, 0.1, 1.0], "batch_size": [16, 16, 64],
                       "val_acc": [math.nan] * 3, "train_loss": [0.5, 0.3, math.nan],
                       "diverged": [False, False, True]})


@pytest.mark.parametrize("by", [None, "batch_size"])
def test_best_without_a_validation_set_says_so(by):
    from trainlab import measures
    with pytest.raises(ValueError) as e:
        measures.best_lr(NO_VAL, by=by)
    msg = str(e.value)
    assert "val_fraction" in msg and "'val_acc'" in msg and "metric='train_loss', maximize=False" in msg


def test_sweep_best_without_a_validation_set_says_so():
    from trainlab.sweeps import Sweep
    result = Sweep([hand_made_run(5) for _ in range(3)], NO_VAL)
    with pytest.raises(ValueError, match="no validation set"):
        result.best()
    assert result.best("train_loss", maximize=False) is result.runs[1]


def test_best_by_another_metric_and_an_unknown_metric():
    from trainlab import measures
    assert measures.best_lr(NO_VAL, "train_loss", maximize=False) == 0.1
    assert measures.best_row(NO_VAL, "train_loss", maximize=False) == 1
    with pytest.raises(ValueError, match="metric='val_accuracy' is not a column.*val_acc"):
        measures.best_row(NO_VAL, "val_accuracy")
