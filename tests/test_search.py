"""Hyperparameter search: grid, random and TPE draw the asked budget, reproducibly by
seed; log-scale draws spread over the decades; bad spaces fail before any training;
random search beats a grid only when few knobs matter (the toy objective)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from trainlab import Spec, SpecError
from trainlab.lessons import search

SPACE = {"lr": (1e-5, 1.0, True), "weight_decay": (1e-6, 1e-3, True)}
TINY = Spec(subset=600, val_fraction=0.5, epochs=1, depth=1, width=16, batch_size=64)


def toy():
    return search.toy_objective(SPACE, optimum={"lr": 0.6, "weight_decay": 0.3})


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


# --- the budget and the seed ------------------------------------------------------

@pytest.mark.parametrize("budget", [1, 5, 9, 16, 17])
def test_random_search_draws_exactly_the_budget(budget):
    result = search.random_search(None, SPACE, budget, seed=3, objective=toy())
    assert len(result.points) == len(result.values) == len(result.table) == budget
    assert list(result.table["trial"]) == list(range(1, budget + 1))


@pytest.mark.parametrize("n_axes, budget", [(1, 7), (2, 9), (2, 10), (2, 15), (3, 9), (3, 27), (4, 16), (5, 3)])
def test_grid_respects_the_budget_and_uses_most_of_it(n_axes, budget):
    space = {f"x{i}": (0.0, 1.0) for i in range(n_axes)}
    points = search.grid_points(space, budget)
    assert 1 <= len(points) <= budget
    counts = search.grid_counts(n_axes, budget)
    assert math.prod(counts) == len(points)
    # no axis could get one more value without passing the budget
    assert all(math.prod(counts) // c * (c + 1) > budget for c in counts)
    # a full grid: every combination of each axis's values, once
    assert len({tuple(sorted(p.items())) for p in points}) == len(points)


def test_grid_of_9_over_two_axes_tries_only_three_learning_rates():
    result = search.grid_search(None, SPACE, 9, objective=toy())
    assert len(result.points) == 9 and result.distinct("lr") == 3
    # cell centres on the log scale: 10 ** (-5 + 5 * (i + 0.5) / 3)
    assert sorted({p["lr"] for p in result.points}) == pytest.approx([10 ** (-5 + 5 * (i + 0.5) / 3) for i in range(3)])
    assert search.random_search(None, SPACE, 9, seed=0, objective=toy()).distinct("lr") == 9


def test_random_search_is_reproducible_by_seed_and_extends_with_the_budget():
    a = search.random_points(SPACE, 12, seed=7)
    assert a == search.random_points(SPACE, 12, seed=7)
    assert a != search.random_points(SPACE, 12, seed=8)
    assert search.random_points(SPACE, 5, seed=7) == a[:5]  # a longer search extends a shorter one


def test_log_scale_draws_fall_in_range_and_spread_over_the_decades():
    points = search.random_points({"lr": (1e-5, 1.0, True)}, 2000, seed=0)
    lrs = np.array([p["lr"] for p in points])
    assert lrs.min() >= 1e-5 and lrs.max() <= 1.0
    per_decade = np.histogram(np.log10(lrs), bins=5, range=(-5, 0))[0] / len(lrs)
    assert per_decade == pytest.approx([0.2] * 5, abs=0.04)  # a fifth of the draws in every decade
    # the null: drawn on a linear scale, almost all land in the top decade
    linear = np.array([p["lr"] for p in search.random_points({"lr": (1e-5, 1.0)}, 2000, seed=0)])
    assert (linear > 0.1).mean() > 0.85 and (linear < 1e-2).mean() < 0.03


def test_integer_fields_are_drawn_as_whole_numbers_in_range():
    axes = search.check_space({"width": (8, 64, True)}, TINY)
    assert axes["width"].integer
    widths = [p["width"] for p in search.random_points(axes, 50, seed=1)]
    assert all(isinstance(w, int) and 8 <= w <= 64 for w in widths)


def test_tpe_runs_the_asked_trials_and_is_reproducible_by_seed():
    a = search.tpe_search(None, SPACE, 14, seed=5, objective=toy())
    b = search.tpe_search(None, SPACE, 14, seed=5, objective=toy())
    c = search.tpe_search(None, SPACE, 14, seed=6, objective=toy())
    assert len(a.points) == len(a.values) == 14
    assert a.points == b.points and a.values == b.values
    assert a.points != c.points
    lrs = [p["lr"] for p in a.points]
    assert min(lrs) >= 1e-5 and max(lrs) <= 1.0


def test_tpe_after_its_startup_trials_proposes_points_near_the_optimum():
    """What TPE adds to random search: after its random start-up trials it proposes
    points near the best ones, on a toy objective whose peak is narrow."""
    late, early = [], []
    for s in range(4):
        r = search.tpe_search(None, SPACE, 30, seed=s, objective=toy(), n_startup=8)
        early.append(np.mean(r.values[:8]))
        late.append(np.mean(r.values[-10:]))
    assert np.mean(late) > np.mean(early) + 0.05


def test_best_so_far_is_the_running_maximum_and_skips_diverged_runs():
    assert search.best_so_far([0.1, math.nan, 0.3, 0.2, 0.5]) == [0.1, 0.1, 0.3, 0.3, 0.5]
    r = search.random_search(None, SPACE, 10, seed=0, objective=toy())
    t = r.table
    assert (t["best_so_far"].diff().dropna() >= 0).all()
    assert t["best_so_far"].iloc[-1] == r.best_value == max(r.values)


def test_compare_gives_mean_and_se_over_search_seeds():
    rs = [search.random_search(None, SPACE, 6, seed=s, objective=toy()) for s in range(3)]
    table = search.compare({"random": rs})
    assert list(table["trial"]) == list(range(1, 7)) and (table["n"] == 3).all()
    last = [r.table["best_so_far"].iloc[-1] for r in rs]
    assert table["mean"].iloc[-1] == pytest.approx(np.mean(last))
    assert table["se"].iloc[-1] == pytest.approx(np.std(last, ddof=1) / np.sqrt(3))


# --- coarse then fine ------------------------------------------------------------

def test_refine_narrows_around_the_centre_and_stays_in_range():
    fine = search.refine(SPACE, {"lr": 1e-3, "weight_decay": 1e-6}, fraction=0.2)
    assert fine["lr"].low == pytest.approx(10 ** -3.5) and fine["lr"].high == pytest.approx(10 ** -2.5)
    # at the edge, the narrowed range is shifted back inside the original one
    assert fine["weight_decay"].low == pytest.approx(1e-6)
    assert fine["weight_decay"].high == pytest.approx(10 ** (-6 + 0.2 * 3))


def test_coarse_to_fine_puts_the_fine_stage_near_the_coarse_best():
    coarse, fine = search.coarse_to_fine(None, SPACE, 9, seed=2, objective=toy())
    assert len(coarse.points) == len(fine.points) == 9
    assert coarse.points == search.random_points(SPACE, 9, seed=2)
    centre = coarse.best["lr"]
    assert all(abs(math.log10(p["lr"] / centre)) <= 0.25 * 5 + 1e-9 for p in fine.points)
    assert np.mean(fine.values) > np.mean(coarse.values)


# --- the toy objective: the lesson and its nulls ------------------------------------

def test_toy_random_beats_grid_only_when_one_knob_matters():
    one = search.toy_regrets(SPACE, 16, weights={"weight_decay": 0.001}, problems=100, seed=0).mean()
    equal = search.toy_regrets(SPACE, 16, weights={"weight_decay": 1.0}, problems=100, seed=0).mean()
    one_d = search.toy_regrets({"lr": SPACE["lr"]}, 16, problems=100, seed=0).mean()
    assert one["random"] < 0.6 * one["grid"]
    assert equal["random"] > equal["grid"]   # null: both knobs matter, the grid's spacing wins
    assert one_d["random"] > one_d["grid"]   # null: one axis only, the grid puts every run on it


# --- bad input fails before any training -------------------------------------------

@pytest.mark.parametrize("space, field, words", [
    ({"learning_rate": (1e-4, 1e-1, True)}, "learning_rate", "spec field"),
    ({"lr": (0.1, 0.01, True)}, "lr", "low < high"),
    ({"lr": (0.01, 0.01)}, "lr", "low < high"),
    ({"weight_decay": (0.0, 1e-3, True)}, "weight_decay", "log"),
    ({"lr": (-1.0, 1.0, True)}, "lr", "log"),
    ({"lr": "0.1"}, "lr", "range"),
    ({"lr": (1e-4, math.inf)}, "lr", "finite"),
    ({"dropout": (0.0, 1.5)}, "dropout", "dropout"),   # the spec itself refuses dropout 1.5
])
def test_bad_spaces_name_the_field_before_any_training(space, field, words, runs_dir, monkeypatch):
    import trainlab.sweeps
    monkeypatch.setattr(trainlab.sweeps, "run_cached", lambda *a, **k: pytest.fail("trained on a bad space"))
    for call in (lambda: search.random_search(TINY, space, 4, seed=0), lambda: search.grid_search(TINY, space, 4),
                 lambda: search.tpe_search(TINY, space, 4, seed=0)):
        with pytest.raises(SpecError) as err:
            call()
        assert err.value.field == field and words in str(err.value)


@pytest.mark.parametrize("budget", [0, -3, 2.5, True, "9"])
def test_a_bad_budget_is_refused(budget):
    with pytest.raises(SpecError) as err:
        search.random_search(TINY, SPACE, budget, seed=0)
    assert err.value.field == "budget" and ">= 1" in str(err.value)


def test_bad_seed_and_missing_objective_are_refused():
    with pytest.raises(SpecError, match="seed"):
        search.random_search(None, SPACE, 3, seed=-1, objective=toy())
    with pytest.raises(SpecError, match="objective"):
        search.random_search(None, SPACE, 3, seed=0)


# --- real runs, tiny -----------------------------------------------------------------

def test_real_searches_train_through_the_cache(runs_dir):
    space = {"lr": (1e-4, 1e-1, True), "weight_decay": (1e-6, 1e-3, True)}
    r = search.random_search(TINY, space, 3, seed=0)
    assert len(r.specs) == 3 and all(0 <= v <= 1 for v in r.values)
    assert [s.lr for s in r.specs] == [p["lr"] for p in r.points]
    assert len(list(runs_dir.glob("*.json"))) == 3
    again = search.random_search(TINY, space, 3, seed=0)
    assert again.values == r.values and len(list(runs_dir.glob("*.json"))) == 3   # nothing trained twice
    t = search.tpe_search(TINY, space, 3, seed=0)
    assert len(t.values) == 3 and all(0 <= v <= 1 for v in t.values)
    fig = search.search_view(TINY.replace(lr=1e-2), lrs=(1e-3, 1e-2))
    assert len(fig.axes) == 2


def test_best_of_gives_mean_and_se_of_each_searchs_best_and_skips_nan():
    runs = [search.SearchResult("random", {}, [{}] * 3, [0.5, math.nan, 0.7]),
            search.SearchResult("random", {}, [{}] * 3, [0.6, 0.9, 0.1])]
    mean, se = search.best_of(runs)
    assert mean == pytest.approx(0.8) and se == pytest.approx(0.1)
    assert search.best_of(runs, k=1) == pytest.approx((0.55, 0.05))
    assert search.best_of(runs[:1]) == pytest.approx((0.7, 0.0))
    with pytest.raises(SpecError, match="k"):
        search.best_of(runs, k=0)


def test_stage_values_pools_one_part_of_every_search():
    runs = [search.SearchResult("random", {}, [{}] * 3, [1.0, 2.0, 3.0]),
            search.SearchResult("random", {}, [{}] * 3, [4.0, 5.0, 6.0])]
    assert search.stage_values(runs) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert search.stage_values(runs, slice(2, None)) == [3.0, 6.0]


def test_seed_values_trains_each_seed_once_and_repeats(runs_dir):
    first = search.seed_values(TINY, [0, 1])
    assert first.shape == (2,) and first[0] != first[1]
    assert (search.seed_values(TINY, [1, 0]) == first[::-1]).all()   # from the cache, same numbers
    with pytest.raises(SpecError, match="seed"):
        search.seed_values(TINY, [0, -1])


# --- two stages as one budget, one knob at a time, the winner across seeds ----------

def test_chain_is_one_search_of_both_stages_budgets():
    coarse, fine = search.coarse_to_fine(None, SPACE, 9, seed=2, objective=toy())
    both = search.chain(coarse, fine)
    assert len(both.values) == 18 and both.points[:9] == coarse.points and both.points[9:] == fine.points
    assert both.best_value == max(coarse.best_value, fine.best_value)
    assert both.table["best_so_far"].iloc[8] == coarse.best_value   # the first 9 trials are the coarse stage


def test_good_band_measures_how_wide_a_knob_can_be_set_without_a_visible_loss():
    xs = [10 ** (-6 + 0.5 * j) for j in range(11)]
    peaked = search.SearchResult("sweep", {}, [{"lr": x} for x in xs],
                                 [0.5, 0.6, 0.7, 0.8, 0.88, 0.9, 0.88, 0.8, 0.5, math.nan, 0.1])
    flat = search.SearchResult("sweep", {}, [{"lr": x} for x in xs], [0.9] * 9 + [0.5, math.nan])
    assert search.good_band(peaked, "lr", n_val=2000) == pytest.approx(0.0)   # 0.88 is 2.1 SE below 0.9
    assert search.good_band(peaked, "lr", n_val=2000, tol=3) == pytest.approx(1.0)
    assert search.good_band(flat, "lr", n_val=2000) == pytest.approx(4.0)      # NaN and the loss at the end left out


def test_winner_kept_counts_the_other_seeds_where_the_winner_stays_best():
    rng = np.random.default_rng(0)
    common = rng.normal(0, 0.02, size=5)                     # a seed moves every setting alike
    tied = 0.9 + common + rng.normal(0, 0.01, size=(5, 5))   # five near-equal settings
    apart = tied - np.arange(5)[:, None] * 0.05              # the same, 5 points apart from each other
    assert search.winner_kept(apart) == 1.0                  # the null: real gaps, the winner stays
    assert search.winner_kept(tied) < 1.0
    assert search.winner_kept([[0.9, math.nan], [0.8, 0.7]]) == 0.0   # a diverged winner lost that seed
    with pytest.raises(ValueError, match="settings x"):
        search.winner_kept([[0.9, 0.8]])


def test_sweep_refuses_a_bad_field_before_any_training(runs_dir, monkeypatch):
    import trainlab.sweeps
    monkeypatch.setattr(trainlab.sweeps, "run_cached", lambda *a, **k: pytest.fail("trained on a bad sweep"))
    with pytest.raises(SpecError) as err:
        search.one_knob(TINY, "learning_rate", [1e-3, 1e-2])
    assert err.value.field == "learning_rate"
    with pytest.raises(SpecError, match="weight_decay"):
        search.one_knob(TINY, "weight_decay", [1e-3, 100.0])
    with pytest.raises(SpecError, match="values"):
        search.one_knob(TINY, "lr", [])


def test_winner_lead_is_near_zero_for_a_tie_and_large_for_a_real_lead():
    rng = np.random.default_rng(1)
    common = rng.normal(0, 0.02, size=5)
    tied = 0.9 + common + rng.normal(0, 0.005, size=(5, 5))
    apart = tied - np.arange(5)[:, None] * 0.05
    assert abs(search.winner_lead(tied, n_val=2000)) < 1.5
    assert search.winner_lead(apart, n_val=2000) > 4      # the null: a real lead shows on every seed
    with pytest.raises(ValueError, match="settings x"):
        search.winner_lead([[0.9], [0.8]], n_val=2000)


def test_halving_stops_some_trials_and_counts_only_their_epochs(runs_dir):
    base = TINY.replace(epochs=4)
    result = search.halving_search(base, SPACE, 8, seed=0, reduction_factor=2)
    t = result.table
    assert len(t) == 8 and t["epochs"].between(1, 4).all()
    kept = t[~t["stopped"] & np.isfinite(t["value"])]
    assert len(kept) >= 1 and (kept["epochs"] == 4).all() and (kept["value"] == kept["full_value"]).all()
    stopped = t[t["stopped"]]
    assert len(stopped) >= 1 and stopped["value"].isna().all() and (stopped["epochs"] < 4).all()
    assert sum(result.epochs) < 8 * 4
    again = search.halving_search(base, SPACE, 8, seed=0, reduction_factor=2)  # the cache: same decisions
    assert again.epochs == result.epochs and again.best == result.best


@pytest.mark.parametrize("kwargs,field", [(dict(pruner="median"), "pruner"), (dict(reduction_factor=1), "reduction_factor")])
def test_halving_refuses_bad_settings_before_training(kwargs, field, runs_dir):
    with pytest.raises(SpecError, match=field):
        search.halving_search(TINY.replace(epochs=4), SPACE, 8, seed=0, **kwargs)
    with pytest.raises(SpecError, match="base.epochs"):
        search.halving_search(TINY, SPACE, 8, seed=0)
    assert not runs_dir.exists() or not list(runs_dir.iterdir())
