"""Rows, labels and the exported files of the Compare page's report, from run records as the pipeline stores them."""

from __future__ import annotations

import json

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
    assert run_label(deep).startswith("opc[layer=features] · digits · classes 0,1 · ")
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
