"""What a reader sees: plots that show the lesson, formatted tables, readable claim
margins, panels that show their starting figure without a kernel, cached models."""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib
import pandas as pd
import pytest
from trainlab import Spec, plots
from trainlab.claims import Claims
from trainlab.run import Run
from trainlab.tables import number_text, pretty

matplotlib.use("Agg")
TINY = Spec(subset=600, epochs=2, depth=1, width=16, batch_size=64)


def fake_run(spec: Spec, losses: list[float], diverged: bool = False) -> Run:
    steps = pd.DataFrame({"step": range(len(losses)), "epoch": 1, "loss": losses, "lr": spec.lr,
                          "grad_norm": 1.0})
    epochs = pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_acc": [0.5, 0.8]})
    return Run(spec, steps, epochs, {"val_acc": 0.8}, diverged, 2, 1.0, "cpu")


def test_divergence_is_marked_at_the_top_where_it_happened_on_a_log_axis():
    run = fake_run(TINY, [2.3, 50.0, 1e6, math.nan], diverged=True)
    fig = plots.curves({"too large": run}, "loss", logy=True)
    ax = fig.axes[0]
    marks = [l for l in ax.lines if l.get_marker() == "x"]
    assert len(marks) == 1 and marks[0].get_xdata()[0] == 3
    assert marks[0].get_ydata()[0] == pytest.approx(0.96)  # in axes coordinates: visible on any scale
    assert any(t.get_text() == "diverged" for t in ax.texts)


def test_runs_of_different_batch_sizes_line_up_by_epoch_or_examples():
    small, large = TINY.replace(batch_size=16), TINY.replace(batch_size=256)
    runs = {"16": fake_run(small, [1.0] * small.steps_per_epoch), "256": fake_run(large, [1.0] * large.steps_per_epoch)}
    ax = plots.curves(runs, "loss", x="epoch").axes[0]
    ends = [line.get_xdata()[-1] for line in ax.lines]
    assert ends == pytest.approx([1.0, 1.0])  # one epoch each, the same length on the axis
    ax = plots.curves(runs, "loss", x="examples").axes[0]
    assert [line.get_xdata()[-1] for line in ax.lines] == [16 * small.steps_per_epoch, 256 * large.steps_per_epoch]
    with pytest.raises(ValueError, match="x: 'time' is not allowed"):
        plots.curves(runs, "loss", x="time")


def test_lines_differ_in_style_legends_sit_outside_and_epochs_are_whole():
    runs = {str(i): fake_run(TINY, [1.0, 0.9]) for i in range(3)}
    ax = plots.curves(runs, "val_acc", source="epochs", ylim=(0, 1)).axes[0]
    assert len({line.get_linestyle() for line in ax.lines}) == 3
    assert ax.get_ylim() == (0, 1)
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().bounds[0] > ax.get_window_extent().x1 - 1
    ticks = ax.xaxis.get_major_locator().tick_values(1, 2)
    assert all(float(t).is_integer() for t in ticks)


def test_zoom_inset_is_scaled_to_the_end_of_training():
    runs = {"a": fake_run(TINY, [4.0] * 10 + [0.05] * 30), "b": fake_run(TINY, [4.0] * 10 + [0.2] * 30)}
    ax = plots.curves(runs, "loss", zoom=0.3).axes[0]
    inset = ax.child_axes[0]
    lo, hi = inset.get_ylim()
    assert lo < 0.05 and 0.2 < hi < 1.0  # the final gap fills the inset; the start (4.0) is left out


def test_schedule_plot_draws_the_specs_that_were_trained():
    trained = {"cosine": TINY.replace(lr=0.064, schedule="cosine"),
               "exponential + warm-up": TINY.replace(lr=0.064, schedule="exponential", warmup_steps=5)}
    ax = plots.schedules(trained).axes[0]
    assert [line.get_label() for line in ax.lines] == list(trained)
    assert max(ax.lines[1].get_ydata()) == pytest.approx(0.064)  # warm-up reaches the peak


def test_tables_read_as_numbers_not_floats():
    assert [number_text(v) for v in (3372.0, 0.123456, 72197777372422864896.0, math.nan, True, "x")] == \
        ["3372", "0.123", "7.22e+19", "—", "yes", "x"]
    html = pretty(pd.DataFrame({"steps": [3372.0], "loss": [math.nan]})).to_html()
    assert "3372" in html and "3372.0" not in html and "—" in html and "nan" not in html


def test_tables_keep_row_names_and_hide_row_numbers():
    named = pd.DataFrame({"val_acc": [0.9, 0.8]}, index=pd.Index([16, 256], name="batch size"))
    assert "batch size" in pretty(named).to_html()
    labels = pd.DataFrame({"min": [1.0, 19.0]}, index=["sex", "age"])
    assert ">sex<" in pretty(labels).to_html()
    numbers = pd.DataFrame({"val_acc": [0.9, 0.8, 0.7]}).iloc[[0, 2]]   # filtered row numbers say nothing
    assert 'class="row_heading' not in pretty(numbers).to_html()
    assert 'class="row_heading' in pretty(numbers, index=True).to_html()


def test_claim_margins_are_relative_or_in_orders_of_magnitude():
    claims = Claims("t", "smoke", 0)
    claims.check("activations vanish", 7.9e-16, "<", 1e-6, log=True)
    claims.check("accuracy", 0.95, ">", 0.8)
    claims.that("diverges", True)
    spare = claims.table["to spare"].tolist()
    assert spare == ["+9.1 orders of magnitude", "+19% of the threshold", "yes"]


def test_a_panel_carries_a_static_image_of_its_starting_figure(tmp_path):
    import nbformat
    from trainlab.report import to_html
    from trainlab.widgets import explore
    seen = []

    def view(spec):
        seen.append(spec.lr)
        fig, (ax,) = plots.figure()
        ax.plot([0, 1], [0, spec.lr])
        return fig

    panel = explore(view, Spec(lr=0.01), lr=[0.001, 0.01])
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and bundle["image/png"].startswith("iVBOR")
    assert seen == [0.01]  # drawn once, at the starting value
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("explore(...)")
    cell.outputs = [nbformat.v4.new_output("display_data", data=bundle)]
    nb.cells = [cell]
    path = tmp_path / "panel.ipynb"
    nbformat.write(nb, path)
    html = to_html(path).read_text()
    assert "data:image/png;base64," + bundle["image/png"][:40] in html  # shown with no kernel or network
    assert "The panel at its starting values (lr 0.01)." in html and "live kernel" in html
    assert 'alt="The panel at its starting values (lr 0.01)."' in html


def test_run_cached_keeps_the_model_when_asked(mnist_ready, tmp_path, monkeypatch):
    import torch
    from trainlab.sweeps import cache_path, run_cached
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    first = run_cached(TINY, model=True)
    assert cache_path(TINY).with_suffix(".pt").is_file()

    def no_training(*a, **k):
        raise AssertionError("retrained a cached run")
    monkeypatch.setattr("trainlab.train.fit", no_training)
    again = run_cached(TINY, model=True)
    x = torch.randn(5, 1, 28, 28)
    first.model.eval(), again.model.eval()
    assert torch.equal(first.model(x), again.model(x))
    cache_path(TINY).with_suffix(".pt").write_bytes(b"torn")
    monkeypatch.undo()
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    with pytest.warns(UserWarning, match="weights"):
        assert run_cached(TINY, model=True).model is not None  # retrained from a bad weights file


def test_report_writes_a_gallery_of_every_notebook(tmp_path, monkeypatch):
    from notebook_factory import write_notebook
    from trainlab.report import report
    monkeypatch.delenv("TRAINLAB_CLAIMS_DIR", raising=False)
    (tmp_path / "nbs").mkdir()
    good = write_notebook(
        tmp_path / "nbs" / "01_good.ipynb", "md:# 01 · A good lesson",
        "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([0, 1])\nplt.show()",
        "from trainlab.claims import Claims\nclaims = Claims('01_good', profile, seed)\n"
        "claims.check('1. big enough', 2.0, '>', 1.0)\nclaims.check('2. tight', 1.05, '>', 1.0)\nclaims.report()",
        lesson="shows a good thing")
    bad = write_notebook(tmp_path / "nbs" / "02_bad.ipynb", "md:# 02 · A broken one", "raise RuntimeError('boom')")
    monkeypatch.chdir(tmp_path)
    out = Path("reports")  # relative, as `make run` passes it; the kernels run elsewhere
    assert report([good, bad], out, "smoke") == 1
    page = (out / "index.html").read_text()
    assert len(re.findall(r'class="card( failed)?"', page)) == 2
    assert "01 · A good lesson" in page and "shows a good thing" in page and 'href="01_good.html"' in page
    assert "claims held: <strong>2 / 2</strong>" in page and "2. tight (+5% of the threshold)" in page
    assert "data:image/png;base64," in page and "profile smoke" in page and "seed 0" in page
    assert "02 · A broken one" in page and 'class="card failed"' in page and 'href="02_bad.ipynb"' in page
    assert page.count("seed 0") == 2


def test_panel_axes_stay_put_from_move_to_move(mnist_ready, tmp_path, monkeypatch):
    from trainlab import plots
    from trainlab.lessons.learning_rate import schedule_view
    monkeypatch.setenv("TRAINLAB_RUNS", str(tmp_path))
    diverging = TINY.replace(optimizer="sgd", lr=50.0, schedule="constant", epochs=3)
    for spec in (diverging, TINY.replace(epochs=3)):
        sched, loss, acc = schedule_view(spec).axes[:3]
        assert loss.get_xlim() == acc.get_xlim() == (0, 3.05)  # the whole run, even one that diverged at once
        assert acc.get_ylim() == (0.0, 1.0) and loss.get_ylim() == plots.LOSS_RANGE
        assert sched.get_ylim()[0] == 0
