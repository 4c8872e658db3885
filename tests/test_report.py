"""Rows, labels and the exported files of the Compare page's report, from run records as the pipeline stores them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from opc_core.report.tables import chart_rows, figures, method_label, run_label, run_row, write_report
from opc_core.runs.store import RunStore


def _bench_child(store: RunStore, label: str, method: str, ua: float, fm: float | None = None):
    """An unlearn run as the benchmark stores it: label and method in the config, the summary in the metrics."""
    run = store.create(
        "unlearn",
        {"method": method, "label": label, "dataset": "digits", "model": "cnn_small"},
        split={
            "mode": "class",
            "forget_classes": [0, 1],
            "forget_ratio": None,
            "seed": 0,
            "forget_idx": [1],
            "retain_idx": [2],
            "test_idx": [3],
            "cal_idx": [3],
        },
        status="running",
    )
    metrics = {
        "method": method,
        "dataset": "digits",
        "model": "cnn_small",
        "ua": ua,
        "ra": 99.0,
        "ta": 97.0,
        "mia": 100.0,
        "seconds": 1.5,
        "representation": {"contraction_radius": 0.1},
    }
    if fm is not None:
        metrics["recovery"] = {"fm": {"recovered_ua": fm}}
    store.update_metrics(run.id, metrics)
    store.set_status(run.id, "done")
    return store.get(run.id)


def test_variants_keep_their_label_everywhere(tmp_path):
    store = RunStore(tmp_path / "home")
    deep = _bench_child(store, "opc[layer=features]", "opc", 99.5, fm=57.1)
    plain = _bench_child(store, "opc", "opc", 98.6)
    assert method_label(deep) == "opc[layer=features]" and method_label(plain) == "opc"
    assert run_label(deep).startswith("opc[layer=features] · digits · classes 0,1 · seed 0 · ")
    row = run_row(deep)
    assert row["method"] == "opc[layer=features]" and row["UA"] == 99.5 and row["UA after fm"] == 57.1
    assert row["forget"] == "classes 0,1" and row["contraction radius"] == 0.1
    rows = chart_rows([deep, plain])
    assert [r["method"] for r in rows] == [f"opc[layer=features] ({deep.id[-6:]})", f"opc ({plain.id[-6:]})"]
    assert len(figures(rows)) == 2  # UA/RA/TA/MIA bars, and the recovery bars since one run has them
    assert len(figures([r for r in rows if not r["recovered_ua"]])) == 1


def test_write_report_files(tmp_path):
    store = RunStore(tmp_path / "home")
    runs = [_bench_child(store, "opc", "opc", 98.6, fm=18.9), _bench_child(store, "ft", "ft", 96.1, fm=12.0)]
    paths = write_report(runs, tmp_path / "out", title="Two runs")
    html = open(paths["html"], encoding="utf-8").read()
    assert "<title>Two runs</title>" in html and html.count("Plotly.newPlot") == 2
    assert "UA after fm" in html and "18.90" in html  # the table, formatted
    lines = open(paths["csv"], encoding="utf-8").read().splitlines()
    assert len(lines) == 3 and "UA after fm" in lines[0]
    recs = json.loads(open(paths["json"], encoding="utf-8").read())
    assert [r["id"] for r in recs] == [r.id for r in runs]
    assert recs[0]["split_summary"] == {"mode": "class", "forget_classes": [0, 1], "forget_ratio": None, "seed": 0}


def test_one_progress_bar_for_a_whole_comparison(tmp_path):
    """The bar's fraction follows the methods through their loop, their attacks and the final inversion."""
    from opc_core.report.progress import DEFAULT_ATTACK_S, INVERSION_SHARE, LOOP_SHARE, bench_progress

    store = RunStore(tmp_path / "home")
    bench = store.create("bench", {"methods": ["opc", "ft"], "dataset": "digits"}, status="running")
    now = bench.started + 10.0
    start = bench_progress(store.get(bench.id), [], now)
    assert start.fraction == 0 and start.phase == "starting" and start.eta_s is None and start.n_methods == 2
    first = store.create("unlearn", {"method": "opc", "dataset": "digits", "model": "m"}, parent=bench.id)
    store.set_status(first.id, "running")
    store.append_step(first.id, 5, 10, {"loss": 1.0}, 1.0)
    p = bench_progress(store.get(bench.id), [store.get(first.id)], now)
    per_method = (1 - INVERSION_SHARE) / 2
    assert p.fraction == pytest.approx(per_method * LOOP_SHARE * 0.5) and (p.method, p.phase) == ("opc", "unlearn")
    assert p.eta_s == pytest.approx(10.0 * (1 - p.fraction) / p.fraction)
    store.set_status(first.id, "done")  # loop and evaluation over, the recovery attacks run
    p = bench_progress(store.get(bench.id), [store.get(first.id)], store.get(first.id).finished)
    assert p.fraction == pytest.approx(per_method * LOOP_SHARE) and p.phase == "evaluation and recovery attacks"
    later = store.get(first.id).finished + DEFAULT_ATTACK_S / 2  # no steps while attacking: the bar creeps by time
    p = bench_progress(store.get(bench.id), [store.get(first.id)], later)
    assert p.fraction == pytest.approx(per_method * (LOOP_SHARE + (1 - LOOP_SHARE) / 2))
    store.update_metrics(first.id, {"recovery": {"fm": {"recovered_ua": 20.0}}})
    second = store.create("unlearn", {"method": "ft", "dataset": "digits", "model": "m"}, parent=bench.id)
    store.set_status(second.id, "done")
    store.update_metrics(second.id, {"recovery": {}})
    p = bench_progress(store.get(bench.id), [store.get(first.id), store.get(second.id)], now)
    assert p.fraction == pytest.approx(1 - INVERSION_SHARE) and (p.method, p.phase) == ("all methods", "inversion")
    assert p.done_methods == 2 and "2 of 2 methods done" in p.text(10.0)
    store.update_metrics(first.id, {"steps": 10})  # the inversion's steps are numbered after the methods' steps
    stage = {"label": "all methods", "phase": "inversion", "index": 2, "count": 3}
    store.append_steps(bench.id, [{"step": 60, "total": 110, "losses": {}, "elapsed_s": 9.0, "stage": stage}])
    p = bench_progress(store.get(bench.id), [store.get(first.id), store.get(second.id)], now)
    assert p.fraction == pytest.approx(1 - INVERSION_SHARE / 2) and p.n_methods == 2
    store.set_status(bench.id, "done")
    assert bench_progress(store.get(bench.id), [], now).fraction == 1.0


def test_a_comparison_from_run_to_shipped_demo_to_handout(tmp_path):
    """A real (tiny) comparison: every method stores its own steps; its maps are stored; the exported demo imports
    into a fresh store with the same ids, local paths and maps; the handout and the report embed the pictures."""
    from opc_core.report.handout import handout_html
    from opc_core.runs.record import BenchParams
    from opc_core.workflows import Options, start
    from opc_core.workflows.attack import load_run
    from opc_core.workflows.demo import export_demo, import_demo, is_demo
    from opc_core.workflows.explore import embedding_for_run, has_maps, store_maps

    store = RunStore(tmp_path / "a")
    params = BenchParams(
        dataset="digits",
        model="cnn_small",
        methods=["opc:epochs=0.3", "ft:epochs=0.3"],
        forget_classes=[0, 1],
        inversion_images=2,
        inversion_settings={"iterations": 5},
        mia=False,
    )
    bench = start(params, store, Options(title="tiny comparison"))["run_id"]
    kids = store.list(kind="unlearn", parent=bench, status="done")
    assert len(kids) >= 2
    for kid in kids:
        steps = store.steps(kid.id)
        assert steps and steps[-1]["step"] == kid.metrics["steps"]  # loss curves for every method
        store_maps(kid.id, store)
        assert has_maps(store.get(kid.id))
    out = tmp_path / "demo"
    info = export_demo(store, bench, out)
    assert info["runs"] == len(kids) + 1 and info["bytes"] < 5e6
    assert not list(out.rglob("snapshots.npz"))
    shipped = (out / "runs").rglob("*.json")
    assert all(str(tmp_path) not in p.read_text() for p in shipped)  # no machine paths in the shipped files

    fresh = RunStore(tmp_path / "b")
    ids = import_demo(fresh, out)
    assert set(ids) == {bench, *(k.id for k in kids)} and import_demo(fresh, out) == []  # once per home
    for kid in kids:
        got = fresh.get(kid.id)
        assert is_demo(got) and got.metrics["ua"] == kid.metrics["ua"] and fresh.steps(kid.id) == store.steps(kid.id)
        assert str(tmp_path / "b") in got.metrics["checkpoint"]
        np.testing.assert_array_equal(
            embedding_for_run(kid.id, "umap", fresh)["unlearned"], embedding_for_run(kid.id, "umap", store)["unlearned"]
        )
        assert load_run(kid.id, fresh).unlearned is not None  # its checkpoint and its original resolve here
    page = handout_html(fresh, bench)
    assert page.count("<img src='data:image/png;base64,") == 3 and "UA after FM" in page and "<li>" in page
    paths = write_report(fresh.list(kind="unlearn"), tmp_path / "report")
    html = open(paths["html"], encoding="utf-8").read()
    assert html.count("<img src='data:image/png;base64,") == 2  # the map grid and the inversion gallery
    assert ">None<" not in html and "table-layout:fixed" in html
    for line in open(paths["csv"], encoding="utf-8").read().splitlines()[1:]:
        assert all(len(c.split(".")[1]) <= 2 for c in line.split(",") if c.replace(".", "").isdigit())


def test_expectation_puts_the_measured_range_beside_the_value(monkeypatch):
    from opc_core.report import text

    ranges = {"opc_features": {"recovered_ua_fm": [60.04, 69.96]}, "ft": {"ua": [96.1, 96.1]}}
    monkeypatch.setattr(text, "_EXPECTED", [{"ranges": ranges}])
    line = text.expectation("opc_features", "recovered_ua_fm", 64.2)
    assert line == "opc_features: UA after FM expected 60–70; this run: 64"
    assert text.expectation("ft", "ua", 95.0) == "ft: UA expected 96; this run: 95"
    assert text.expectation("ga", "ua", None) == "ga: UA —"  # no measured range, no value
    # the pages name runs by display name and short id: the range is found under the method's label all the same
    shown = text.expectation("OPC-features (17dee7)", "recovered_ua_fm", 64.2)
    assert shown == "OPC-features (17dee7): UA after FM expected 60–70; this run: 64"
    assert text.method_key("OPC (paper: logits) [lam=2]") == "opc[lam=2]" and text.method_key("ft (a1b2c3)") == "ft"
    caption = text.reading("recovery", [("ft", "ua", 95.0)])
    assert caption.startswith(f"**{text.READING_MARK}**") and caption.endswith("ft: UA expected 96; this run: 95")
    # one format for the range and the value: PSNR in dB with one decimal, not "7.72–11"
    monkeypatch.setattr(text, "_EXPECTED", [{"ranges": {"opc_features": {"psnr": [7.72, 11.22]}}}])
    assert text.expectation("opc_features", "psnr", 8.04) == "opc_features: PSNR (dB) expected 7.7–11.2; this run: 8.0"


def test_mean_cells_say_when_only_some_splits_measured_a_value():
    """A mean over fewer splits than the section has must not read as a mean over all of them."""
    from opc_core.report.bench import _pm

    assert _pm([1.0, 3.0]) == "2.0 ± 1.0"
    assert _pm([15.8, None, None, None]) == "15.8 (1 of 4)"
    assert _pm([1.0, 3.0, float("nan")]) == "2.0 ± 1.0 (2 of 3)"
    assert _pm([None, None]) == "–"
