"""Sweeps: grid expansion, cells as child unlearn runs with the attacks, progress and cancel, a failing cell that fails
alone, aggregation over seeds, the Ray engine (same numbers as the local one; a dying worker fails only its cell),
the CLI, the forget-batch setting and the GPU benchmark's refusal without CUDA."""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

import opc_core.jobs  # noqa: F401  (registers the ray engine)
from opc_core.cli.sweep import parse_grid
from opc_core.methods import Plan, UnlearnConfig, get_method, make_config
from opc_core.methods.base import MethodSpec, stream_batch_size
from opc_core.report.sweep import aggregate, cell_rows, markdown_table, summarise, write_sweep
from opc_core.workflows import Options, start
from opc_core.workflows.sweep import SweepParams, _cell_entry, expand, parse_values, progress
from opc_core.workflows.unlearn import build_split
from tests import sweep_fixtures

ROOT = Path(__file__).resolve().parents[1]
TINY = {"dataset": "digits", "forget_sets": [[0, 1]], "attacks": [], "mia": False}


def test_grid_expands_per_method_with_variants_forget_sets_and_seeds():
    params = SweepParams(
        methods=["opc", "opc:layer=features", "ft"],
        grid={"opc:lam": ["0.1", "1"], "epochs": ["1", "3"]},
        forget_sets=[[0, 1, 2], [3, 4, 5]],
        seeds=[0, 1],
    )
    cells = expand(params)
    # opc and its variant: 2 lam x 2 epochs; ft: 2 epochs (lam is opc's); each x 2 forget sets x 2 seeds
    assert len(cells) == (4 + 4 + 2) * 2 * 2
    first = cells[0]
    assert first.label == "opc[lam=0.1,epochs=1]" and first.overrides == {"lam": "0.1", "epochs": "1"}
    assert (first.forget_classes, first.seed) == ([0, 1, 2], 0) and cells[1].seed == 1
    feats = [c for c in cells if c.variant == "opc[layer=features]"]
    assert feats[0].label == "opc[layer=features,lam=0.1,epochs=1]" and feats[0].overrides["layer"] == "features"
    assert {c.label for c in cells if c.method == "ft"} == {"ft[epochs=1]", "ft[epochs=3]"}
    assert len({c.key for c in cells}) == len(cells)
    assert len(expand(SweepParams(methods=["ft"], grid={"epochs": ["1", "1"]}))) == 1  # a repeated value: one cell


@pytest.mark.parametrize(
    ("grid", "methods", "text"),
    [
        ({"opc:lam": ["-1"]}, ["opc"], "lam"),  # out of range: refused before anything runs
        ({"scrub:lam": ["1"]}, ["opc"], "names method 'scrub'"),
        ({"lam": ["1"]}, ["opc", "ft"], "lam"),  # ft has no lam: a global key must fit every method
    ],
)
def test_a_bad_grid_is_refused_up_front(grid, methods, text):
    with pytest.raises(ValueError, match=text):
        expand(SweepParams(methods=methods, grid=grid))


def test_equal_budget_gives_every_method_the_same_steps(digits):
    split = build_split(digits, [0, 1], None, 0)
    cells = expand(SweepParams(dataset="digits", methods=["opc", "ga", "ft"], equal_budget=37))
    steps = {c.method: get_method(c.method).planned_steps(make_config(c.method, c.overrides), split) for c in cells}
    assert steps == {"opc": 37, "ga": 37, "ft": 37}  # GA's epoch is the small forget set, FT's the retain set
    with pytest.raises(ValueError, match="equal-budget"):
        expand(SweepParams(methods=["opc"], grid={"epochs": ["1"]}, equal_budget=10))


def test_grid_values_parse_from_the_command_line():
    assert parse_values("[0.1, 0.3,1]") == ["0.1", "0.3", "1"] and parse_values("1,3") == ["1", "3"]
    assert parse_grid(["opc:lam=[0.1,1]", "epochs=5"]) == {"opc:lam": ["0.1", "1"], "epochs": ["5"]}
    with pytest.raises(ValueError, match="KEY="):
        parse_grid(["lam"])
    with pytest.raises(ValueError, match="expected a list"):
        parse_values("[]")


def test_forget_batch_is_a_fraction_of_the_retain_batch(digits, digits_model):
    opc = make_config("opc", {"batch_size": 64, "forget_batch": 0.25})
    assert stream_batch_size(opc, "forget", "retain") == 16 and stream_batch_size(opc, "retain", "retain") == 64
    assert stream_batch_size(opc, "forget", "forget") == 64  # GA-like methods: the forget set is the epoch stream
    assert stream_batch_size(make_config("opc", {"forget_batch": 0.001 * 10}), "forget", "retain") == 1
    seen = []

    def spy(model, batch, ctx):
        seen.append({k: len(x) for k, (x, _) in batch.items()})
        return model(batch["retain"][0]).sum() * 0.0, {}

    spec = MethodSpec("t_spy", "", UnlearnConfig, spy, Plan())
    split = build_split(digits, [0, 1], None, 0)
    spec(digits_model, digits, split, UnlearnConfig(batch_size=64, forget_batch=0.25, max_steps=2))
    spec(digits_model, digits, split, UnlearnConfig(batch_size=64, max_steps=1))  # the default: as before
    assert seen == [{"retain": 64, "forget": 16}] * 2 + [{"retain": 64, "forget": 64}]


def test_local_sweep_stores_cells_as_children_and_aggregates_over_seeds(store):
    params = SweepParams(methods=["opc"], grid={"max_steps": ["3"]}, seeds=[0, 1], **{**TINY, "attacks": ["fm"]})
    seen = []
    out = start(params, store, Options(on_step=seen.append))
    sweep = store.get(out["run_id"])
    children = store.list(parent=sweep.id, oldest_first=True)
    assert sweep.status == "done" and [c.status for c in children] == ["done"] * 2
    assert [c.params.name for c in children] == ["opc[max_steps=3]"] * 2 and [c.params.seed for c in children] == [0, 1]
    assert all(c.kind == "unlearn" and c.metrics["steps"] == 3 and "fm" in c.metrics["recovery"] for c in children)
    assert [s.step for s in seen] == [0, 1, 2, 2] and seen[-1].total == 2  # cells finished, as the sweep's steps
    assert progress(store, sweep.id).text().startswith("cells 2/2 done · 0 running · 0 queued")
    (row,) = aggregate(cell_rows(store, sweep.id), ["max_steps"])
    uas = [c.metrics["ua"] for c in children]
    fms = [c.metrics["recovery"]["fm"]["recovered_ua"] for c in children]
    assert row["n"] == 2 and row["ua"] == pytest.approx(statistics.mean(uas))
    assert row["ua std"] == pytest.approx(statistics.stdev(uas)) and row["fm UA"] == pytest.approx(statistics.mean(fms))
    assert "| opc | classes 0,1 | 2 |" in markdown_table([row])  # max_steps is one value: said once, not per row


def test_a_failing_cell_fails_alone_and_cancel_stops_the_rest(store, monkeypatch):
    sweep_fixtures.register()
    try:
        out = start(SweepParams(methods=["t_fail", "ft"], grid={"max_steps": ["2"]}, **TINY), store)
        stop = threading.Event()
        params = SweepParams(methods=["ft"], grid={"max_steps": ["2"]}, seeds=[0, 1, 2], **TINY)
        on_step = lambda info: info.step >= 1 and stop.set()  # noqa: E731  (cancel once the first cell is done)
        with pytest.raises(InterruptedError, match="sweep cancelled"):
            start(params, store, Options(on_step=on_step, stop=stop))
    finally:
        sweep_fixtures.unregister()
    failed, fine = store.list(parent=out["run_id"], oldest_first=True)
    assert store.get(out["run_id"]).status == "done" and (failed.status, fine.status) == ("failed", "done")
    assert "this cell fails on purpose" in failed.error
    cancelled = next(r for r in store.list(kind="sweep") if r.id != out["run_id"])
    cells = store.list(parent=cancelled.id, oldest_first=True)
    assert cancelled.status == "cancelled" and [c.status for c in cells] == ["done", "cancelled", "cancelled"]


def test_export_writes_csv_json_html_and_the_figure(store, tmp_path):
    out = start(SweepParams(methods=["ft"], grid={"max_steps": ["1", "2"]}, **TINY), store)
    files = write_sweep(store, out["run_id"], tmp_path / "out")
    assert set(files) == {"cells", "csv", "json", "html", "png"} and all(
        Path(f).stat().st_size > 0 for f in files.values()
    )
    data = json.loads(files["json"].read_text())
    assert [r["max_steps"] for r in data["table"]] == ["1", "2"] and data["swept"] == ["max_steps"]
    assert "plotly" in files["html"].read_text() and files["png"].read_bytes()[:4] == b"\x89PNG"


needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="ray is not installed (an optional extra: pip install -r requirements-ray.txt -c constraints.txt)",
)


def _numbers(store, sweep_id):
    rows = cell_rows(store, sweep_id)
    return {(r["variant"], r["seed"]): (r["ua"], r["ta"], r.get("fm UA")) for r in rows if r["status"] == "done"}


@needs_ray
def test_ray_engine_gives_the_local_numbers_and_a_dead_worker_fails_only_its_cell(store, monkeypatch):
    from opc_core.jobs.ray_engine import WRITE_BACK_ENV
    from opc_core.workflows.attack import load_run

    monkeypatch.setenv("OPC_LAB_PLUGINS", sweep_fixtures.PLUGIN)
    monkeypatch.setenv(sweep_fixtures.DRIVER_PID_ENV, str(os.getpid()))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray task (cpus_per_cell=1): the same arithmetic, so the same numbers
    common = dict(methods=["opc"], grid={"max_steps": ["3"]}, seeds=[0, 1], **{**TINY, "attacks": ["fm"]})
    sweep_fixtures.register()
    try:
        local = start(SweepParams(**common), store)
        remote = start(SweepParams(**{**common, "methods": ["opc", "t_exit"]}, engine="ray"), store)
        monkeypatch.setenv(WRITE_BACK_ENV, "always")  # as on another node: a scratch store, the record shipped back
        shipped = start(SweepParams(**common, engine="ray"), store)
    finally:
        sweep_fixtures.unregister()
        torch.set_num_threads(threads)
    assert store.get(remote["run_id"]).status == "done"
    cells = store.list(parent=remote["run_id"], oldest_first=True)
    assert [(c.params.method, c.status) for c in cells] == [("opc", "done")] * 2 + [("t_exit", "failed")] * 2
    assert all("Ray worker running this cell died" in c.error for c in cells[2:])
    numbers = _numbers(store, local["run_id"])
    assert len(numbers) == 2 and _numbers(store, remote["run_id"]) == numbers  # bit for bit
    assert _numbers(store, shipped["run_id"]) == numbers
    for cell in store.list(parent=shipped["run_id"]):  # written back: the driver's paths, steps and files
        assert cell.status == "done" and [s["step"] for s in store.steps(cell.id)] == [1, 2, 3]
        assert cell.metrics["run_id"] == cell.id and cell.metrics["checkpoint"].startswith(str(cell.folder))
        assert cell.artifact_path("snapshots").exists() and load_run(cell.id, store).unlearned is not None


@needs_ray
def test_cancel_on_ray_stops_running_cells_and_never_starts_queued_ones(store):
    stop = threading.Event()
    params = SweepParams(methods=["ft"], grid={"max_steps": ["2"]}, seeds=[0, 1, 2, 3, 4], engine="ray", **TINY)
    on_step = lambda info: info.step >= 1 and stop.set()  # noqa: E731  (cancel once the first cell is done)
    with pytest.raises(InterruptedError, match="sweep cancelled"):
        start(params, store, Options(on_step=on_step, stop=stop))
    (sweep,) = store.list(kind="sweep")
    statuses = [c.status for c in store.list(parent=sweep.id)]
    assert sweep.status == "cancelled" and "done" in statuses and statuses.count("cancelled") >= 2
    assert set(statuses) <= {"done", "cancelled"}  # nothing left queued or running, nothing failed


@needs_ray
def test_cli_sweep_on_ray_writes_runs_and_exports(tmp_path):
    env = {**os.environ, "OPC_LAB_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    args = ["--dataset", "digits", "--methods", "ft,opc", "--grid", "max_steps=[1,2]", "--forget-sets", "0,1"]
    args += ["--seeds", "0", "--attacks", "none", "--no-mia", "--engine", "ray", "--out", str(tmp_path / "out")]
    proc = subprocess.run(
        [sys.executable, "-m", "opc_core", "sweep", *args, "--json"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["progress"].startswith("cells 4/4 done") and {r["status"] for r in out["cells"]} == {"done"}
    assert [(r["variant"], r["max_steps"]) for r in out["table"]] == [
        ("ft", "1"),
        ("ft", "2"),
        ("opc", "1"),
        ("opc", "2"),
    ]
    assert (tmp_path / "out" / "sweep.html").exists()


def test_gpu_benchmark_says_why_it_cannot_run_without_cuda():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench_gpu.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert proc.returncode == 2 and "needs a CUDA GPU" in proc.stderr and "Traceback" not in proc.stderr


def test_summary_of_a_running_sweep_counts_its_cells(store):
    params = SweepParams(methods=["ft"], seeds=[0, 1], **TINY)
    sweep = store.create("sweep", params, status="running")
    cells = [(c, store.create("unlearn", c.params(params), parent=sweep.id).id) for c in expand(params)]
    store.update_metrics(sweep.id, {"cells": [_cell_entry(c, run_id) for c, run_id in cells]})
    store.set_status(cells[0][1], "running", pid=os.getpid())
    store.append_step(cells[0][1], 5, 10, {}, 1.0)
    s = summarise(store, sweep.id)
    assert s["progress"].startswith("cells 0/2 done · 1 running · 1 queued") and "ETA" in s["progress"]
    assert [(r["variant"], r["n"]) for r in s["table"]] == [("ft", 0)] and "ua" not in s["table"][0]


def test_sweep_page_launches_a_job_and_shows_the_table(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("OPC_LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPC_LAB_WARM_WORKER", "0")
    monkeypatch.setenv("OPC_LAB_DEMO", "0")
    monkeypatch.syspath_prepend(str(ROOT))
    at = AppTest.from_file(str(ROOT / "pages" / "sweep.py"), default_timeout=90)
    at.session_state["model_choice"] = {"dataset": "digits", "model": "cnn_small", "checkpoint": None, "name": None}
    at.run()
    assert "No sweep yet" in " ".join(i.value for i in at.info) and not at.exception
    at.multiselect(key="sw_methods").set_value(["ft"])
    at.text_input(key="sw_key0").set_value("max_steps")
    at.text_input(key="sw_values0").set_value("1, 2")
    at.text_input(key="sw_forget").set_value("0,1")
    at.text_input(key="sw_seeds").set_value("0")
    at.multiselect(key="sw_attacks").set_value([])
    at.button(key="sw_launch").click().run()
    assert not at.error
    from pages._services import manager

    run = manager().wait(at.session_state["sweep_run"], timeout=600)
    assert run.kind == "sweep" and run.status == "done", run.error
    at.run()
    text = " ".join(m.value for m in at.markdown)
    assert "| ft | 1 | classes 0,1 | 1 |" in text and "| ft | 2 | classes 0,1 | 1 |" in text
    assert len(at.get("plotly_chart")) == 1 and not at.exception
    assert any(c.value.startswith("**How to read it:**") for c in at.caption)


def test_aggregation_known_answers_and_a_method_the_swept_key_skips(tmp_path):
    from opc_core.report.sweep import references, sensitivity_figure, sensitivity_png, series, swept

    def row(variant, lam, seed, ua):
        point = {"lam": lam} if lam else {}
        return {
            "run_id": f"r{seed}",
            "status": "done",
            "variant": variant,
            **point,
            "forget": "f",
            "seed": seed,
            "ua": ua,
        }

    rows = [row("opc", "0.1", 0, 90.0), row("opc", "0.1", 1, 94.0), row("opc", "1", 0, 99.0), row("ft", None, 0, 5.0)]
    rows.append({**row("opc", "1", 1, 0.0), "status": "failed", "ua": None})  # a failed cell counts in no mean
    table = aggregate(rows, ["lam"])
    assert [(r["variant"], r["lam"], r["n"]) for r in table] == [("opc", "0.1", 2), ("opc", "1", 1), ("ft", "", 1)]
    assert table[0]["ua"] == 92.0 and table[0]["ua std"] == pytest.approx(2 * 2**0.5) and table[1]["ua std"] is None
    assert swept(table, ["lam"]) == ["lam"] and [r["variant"] for r in references(table, "lam")] == ["ft"]
    assert [[r["lam"] for r in rs] for rs in series(table, "lam", ["lam"]).values()] == [["0.1", "1"]]
    md = markdown_table(table)
    assert "| opc | 0.1 | f | 2 | 92.0 ± 2.8 |" in md and "| opc | 1 | f | 1 | 99.0 |" in md
    assert len(sensitivity_figure(table, "lam", ["lam"]).layout.shapes) == 1  # FT's reference line in the UA panel
    assert sensitivity_png({"lam": table}, tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
