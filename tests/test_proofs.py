"""The three proofs end to end on digits: both OPC variants as methods, retrain always in a benchmark, the diagnostic
and the references in its rows, the scale-free separation measures, the figures and docs/results.md's tables."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from opc_core.methods import get_method, list_methods, make_config
from opc_core.methods.opc import method_label
from opc_core.metrics.separation import fisher_ratio, forget_confusion, probe_inside


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# --- both OPC variants ----------------------------------------------------------------------------------------------
def test_both_opc_variants_are_methods_named_for_what_they_contract():
    assert list_methods()[:2] == ["opc", "opc_features"]
    assert make_config("opc").layer == "logits" and make_config("opc_features").layer == "features"
    feats = make_config("opc_features", {}, "fashion_mnist_small")
    assert feats.lam == 1.0  # the paper's weight
    assert get_method("opc_features").loss is get_method("opc").loss  # one loss, two configs
    assert make_config("opc", ["layer=features"]).layer == "features"  # the variant syntax still works
    assert method_label("opc") == "OPC (paper: logits)" and method_label("opc_features") == "OPC-features"
    assert method_label("opc[layer=features]") == "OPC-features" and method_label("ft") == "ft"
    assert method_label("opc[layer=features,p=2]") == "OPC-features [p=2]" == method_label("opc_features[p=2]")
    assert method_label("opc[lam=2]") == "OPC (paper: logits) [lam=2]"


# --- scale-free separation inside D_f -------------------------------------------------------------------------------
def test_fisher_ratio_known_answers():
    y = torch.tensor([0, 0, 1, 1])
    f = torch.tensor([[0.0], [2.0], [10.0], [12.0]])  # within: 4 × 1 = 4; between: 4 × 25 = 100
    assert fisher_ratio(f, y) == pytest.approx(25.0)
    assert fisher_ratio(1e-6 * f, y) == pytest.approx(25.0)  # scale-free
    assert fisher_ratio(torch.ones(4, 3), y) == 0.0  # one point
    assert fisher_ratio(torch.tensor([[0.0], [0.0], [1.0], [1.0]]), y) == math.inf  # two points, no spread
    assert math.isnan(fisher_ratio(f, torch.zeros(4, dtype=torch.long)))


def test_probe_inside_separable_vs_collapsed():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(40)
    separable = 1e-4 * (torch.randn(120, 8, generator=g) + 5 * torch.nn.functional.one_hot(y, 8).float())
    out = probe_inside(separable, y)
    assert out["acc"] > 95 and out["chance"] == pytest.approx(100 / 3)  # tiny but separable: found
    collapsed = probe_inside(torch.ones(120, 8), y)
    assert collapsed["acc"] <= 100 / 3 + 1e-6


def test_forget_confusion_counts(digits, digits_model):
    from opc_core.data import make_split
    from opc_core.train.inference import logits_of

    split = make_split(digits, forget_classes=[0, 1, 2], seed=0)
    classes, counts = forget_confusion(digits_model, digits, split)
    assert classes == [0, 1, 2] and counts.shape == (3, digits.num_classes)
    y = digits.train_y[split.forget_idx]
    assert counts.sum() == len(split.forget_idx) and counts[1].sum() == int((y == 1).sum())
    pred = logits_of(digits_model, digits, split.forget_idx).argmax(1)
    assert counts[2, 2] == int(((y == 2) & (pred == 2)).sum())


# --- the benchmark: retrain always, references and the diagnostic in its rows -----------------------------------------
@pytest.fixture(scope="module")
def bench_result(tmp_path_factory):
    from opc_core.runs.record import BenchParams
    from opc_core.runs.store import RunStore
    from opc_core.workflows import start

    store = RunStore(tmp_path_factory.mktemp("home"))
    params = BenchParams(
        dataset="digits",
        methods=["opc:max_steps=4", "opc_features:max_steps=4"],
        forget_classes=[0, 1, 2],
        seed=1,
        inversion_images=2,
        inversion_settings={"iterations": 3, "snapshot_every": 0},
        mia=False,
    )
    return start(params, store), store


def test_bench_adds_retrain_and_references(bench_result):
    result, store = bench_result
    assert [r["method"] for r in result["rows"]] == ["opc[max_steps=4]", "opc_features[max_steps=4]", "retrain"]
    assert result["original"]["method"] == "original" and result["original"]["ua"] < 10
    assert set(result["original"]["recovered_ua"]) == {"fm", "hr", "prototype", "probe", "relearn"}
    for row in result["rows"]:
        assert {"fm_null_ua", "fm_row_ua", "probe_inside", "separation_kept"} <= set(row["diagnostic"])
        run = store.get(row["run_id"])
        assert run.metrics["diagnostic"]["head_rank"] == 10 and "recovery" in run.metrics
    assert set(result["inversion_references"]) == {"grey", "mean", "class_mean"}
    assert result["inversion_config"]["init"] == "mean" and isinstance(result["inversion_config"]["inconclusive"], bool)
    retrain = store.get(result["runs"]["retrain"])
    assert retrain.metrics["inversion"]["references"] == result["inversion_references"]


def test_bars_and_results_markdown(bench_result):
    from opc_core.report.bench import column, method_rows, results_markdown, stat
    from opc_core.report.plots import recovery_bars, with_references

    result, _ = bench_result
    rows = with_references(result)
    assert [r["method"] for r in rows[:2]] == ["original (reference)", "retrain (reference)"]
    assert recovery_bars(rows).data[0].x[0] == "original (reference)"
    twice = [result, {**result, "seed": 2}]
    fm = column(method_rows(twice, "retrain"), "after:fm")
    assert stat(fm) == (pytest.approx(fm[0]), pytest.approx(0.0), 2)
    text = results_markdown(twice)
    assert "## digits · cnn_small" in text and "| retrain |" in text and "| original |" in text
    assert f"{fm[0]:.1f} ± 0.0" in text
    assert "OPC-features [max_steps=4]" in text and "OPC (paper: logits) [max_steps=4]" in text  # display names


def test_embedding_figures():
    from opc_core.report.plots import embedding_animation, embedding_grid, embedding_scatter
    from opc_core.report.plots import forget_confusion as fc

    pts = np.random.default_rng(0).normal(size=(6, 2))
    is_f, labels = np.array([1, 1, 1, 0, 0, 0], bool), np.array([0, 1, 2, 3, 4, 5])
    names = [str(i) for i in range(10)]
    fig = embedding_scatter(pts, is_f, labels, names, "t")
    assert [t.name for t in fig.data] == ["retain set D_r", "D_f · 0", "D_f · 1", "D_f · 2"]  # by true class
    assert len(embedding_scatter(pts, is_f, labels, names, "t", forget_only=True).data) == 3
    anim = embedding_animation([(0, pts), (5, pts + 1)], is_f, labels, names, ((-3, 3), (-3, 3)))
    assert len(anim.frames) == 2 and anim.layout.updatemenus[0].buttons[0].label.endswith("play")
    grid = embedding_grid({"original": pts, "retrain": pts, "x": pts, "y": pts}, is_f, labels, names)
    assert len(grid.data) == 4 * 4
    heat = fc({"a": np.eye(3, 10), "b": np.ones((3, 10))}, [0, 1, 2], names)
    assert len(heat.data) == 2
