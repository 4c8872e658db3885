"""AppTest tests of the dashboard: every page renders, empty states guide the user, a real unlearn job launched
through the Unlearn page's widgets finishes and its results appear on every page, failures and bad uploads are shown.

Each test gets its own OPC_LAB_HOME (run store, local zoo), set before any page creates the job manager.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
# the pages import `pages._services` and its siblings: streamlit puts the app's folder on the path, tests must do it
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PAGES = [
    "pages/model.py",
    "pages/unlearn.py",
    "pages/feature_space.py",
    "pages/recovery.py",
    "pages/inversion.py",
    "pages/compare.py",
    "pages/glossary.py",
]
TIMEOUT = 60


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("OPC_LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPC_LAB_DEVICE", "cpu")
    # spawned job workers inherit it: OpenMP threads that sleep instead of spinning are ~10x faster on a shared CPU
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    # one job manager per test home: no warm worker each (tests/test_jobs.py and the browser test cover that path)
    monkeypatch.setenv("OPC_LAB_WARM_WORKER", "0")
    monkeypatch.setenv("OPC_LAB_DEMO", "0")  # an empty store; tests/test_pages.py::test_demo_* import the demo
    return tmp_path / "home"


@pytest.fixture
def demo_home(home, monkeypatch):
    """A fresh home as a first start sees it: the shipped demo imported."""
    monkeypatch.setenv("OPC_LAB_DEMO", "1")
    return home


def page(path: str, choice: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=TIMEOUT)
    if choice is not None:
        at.session_state["model_choice"] = choice
    return at.run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def digits_choice() -> dict:
    from opc_core.train.zoo import find_checkpoint

    entry = find_checkpoint("digits", "cnn_small")
    assert entry is not None and entry.name == "digits__cnn_small__s0"
    return {"dataset": "digits", "model": "cnn_small", "checkpoint": entry.path, "name": entry.name}


def wait_final(run_id: str, timeout: float = 90.0):
    from opc_core.runs.store import RunStore

    store, deadline = RunStore(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = store.get(run_id)
        if run.final:
            return run
        time.sleep(0.3)
    raise TimeoutError(f"run {run_id} not final after {timeout} s: {store.get(run_id).status}")


def texts(at: AppTest) -> str:
    return "\n".join(
        str(x.value)
        for kind in ("markdown", "caption", "info", "warning", "success", "error")
        for x in getattr(at, kind)
    )


def test_home_renders_with_device_and_workflow(home):
    at = page("app.py")
    assert_clean(at)
    assert at.title[0].value.startswith("OPC Lab")
    body = texts(at)
    assert "CPU" in body and "shallow" in body.lower()
    assert at.button(key="home_preset_fast") and at.button(key="home_preset_full")  # the one-click comparisons


@pytest.mark.parametrize("path", PAGES)
def test_pages_render_and_guide_when_empty(home, path):
    at = page(path)
    assert_clean(at)
    if path == "pages/glossary.py":
        assert "D_f" in texts(at) and "OPC" in texts(at)
    elif path != "pages/model.py":  # the model page always lists the shipped checkpoints
        assert "Unlearn" in texts(at) or "Launch" in texts(at), texts(at)
    else:
        assert at.radio(key="model_pick").value.endswith("assets/zoo/fashion_mnist_small__cnn_small__s0.safetensors")


def test_navigation_reaches_every_page(home):
    at = page("app.py")
    for path in PAGES:
        at.switch_page(path).run()
        assert_clean(at)
        assert at.title, path


def test_unlearn_page_charts_the_split_it_will_use(home, digits):
    at = page("pages/unlearn.py", digits_choice())
    at.multiselect(key="ul_classes").set_value([0, 1]).run()
    assert_clean(at)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    forget, retain = ([int(v) for v in trace["y"]] for trace in fig["data"])
    counts = torch.bincount(digits.train_y, minlength=10).tolist()
    assert forget == counts[:2] + [0] * 8 and retain == [0, 0] + counts[2:]
    at.radio(key="ul_mode").set_value("a random fraction").run()
    at.slider(key="ul_ratio").set_value(0.2).run()
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    forget = [int(v) for v in fig["data"][0]["y"]]
    assert sum(forget) == round(0.2 * len(digits.train_y)) and sum(v > 0 for v in forget) >= 8


def test_unlearn_job_from_widgets_then_every_page_shows_it(home):
    at = page("pages/unlearn.py", digits_choice())
    assert at.selectbox(key="ul_method").value == "opc"
    at.multiselect(key="ul_classes").set_value([0, 1])
    at.number_input(key="hp_opc_digits_epochs").set_value(0.3)
    at.button(key="ul_launch").click().run()
    run_id = at.session_state["unlearn_run"]
    run = wait_final(run_id)
    assert run.status == "done", run.error
    at.run()
    assert_clean(at)
    shown = {m.label: m.value for m in at.metric}
    assert shown["UA"].endswith("%") and float(shown["UA"][:-1]) == pytest.approx(run.metrics["ua"], abs=0.06)
    assert run.metrics["forget_classes"] == [0, 1] and run.metrics["config"]["epochs"] == 0.3
    assert any(m.help for m in at.metric)  # every metric carries its explanation

    fs = page("pages/feature_space.py")
    fs.radio(key="fs_method").set_value("pca").run()
    fs.button(key="fs_go").click().run()
    assert_clean(fs)
    assert len(fs.get("plotly_chart")) >= 3  # original, unlearned, the snapshot frame

    rec = page("pages/recovery.py")
    rec.button(key="rec_go").click().run()
    attack = wait_final(rec.session_state["rec_jobs"][run_id])
    assert attack.status == "done", attack.error
    rec.run()
    assert_clean(rec)
    assert rec.get("plotly_chart") and rec.dataframe

    cmp_ = page("pages/compare.py")
    assert_clean(cmp_)
    assert run_id in cmp_.dataframe[0].value["run"].tolist()


def test_failed_job_shows_its_error(home):
    choice = {**digits_choice(), "checkpoint": str(home / "missing.safetensors"), "name": "missing"}
    at = page("pages/unlearn.py", choice)
    at.number_input(key="hp_opc_digits_epochs").set_value(0.3)
    at.button(key="ul_launch").click().run()
    run = wait_final(at.session_state["unlearn_run"])
    assert run.status == "failed"
    at.run()
    assert not at.exception
    assert any("failed" in e.value and "missing.safetensors" in e.value for e in at.error), [e.value for e in at.error]


def test_bad_upload_is_refused_and_good_one_added(home):
    at = page("pages/model.py")
    at.file_uploader(key="model_upload").set_value(
        [
            ("bad.safetensors", b"not a tensor file", "application/octet-stream"),
            ("bad.json", b'{"arch": "cnn_small"}', "application/json"),
        ]
    )
    at.run()
    at.button(key="model_upload_go").click().run()
    assert not at.exception
    assert at.error and "Refused" in at.error[0].value
    assert not list((home / "zoo").glob("bad*"))

    # a real checkpoint of another dataset (8x8 digits) does not fit the 28x28 default either
    zoo = ROOT / "assets" / "zoo"
    digits = [
        (f"mine{p.suffix}", p.read_bytes(), "application/octet-stream")
        for p in sorted(zoo.glob("digits__cnn_small__s0.*"))
    ]
    at.file_uploader(key="model_upload").set_value(digits).run()
    at.button(key="model_upload_go").click().run()
    assert at.error and "8px" in at.error[0].value

    at.selectbox(key="model_dataset").set_value("digits").run()
    at.file_uploader(key="model_upload").set_value(digits).run()
    at.button(key="model_upload_go").click().run()
    assert_clean(at)
    assert (home / "zoo" / "mine.safetensors").exists()
    assert any(o.startswith("mine (local)") for o in at.radio(key="model_pick").options)


def test_queue_position_and_cancel_buttons(home):
    from opc_core.runs.store import RunStore

    at = page("pages/unlearn.py", digits_choice())
    at.number_input(key="hp_opc_digits_epochs").set_value(200.0)
    at.button(key="ul_launch").click().run()
    first = at.session_state["unlearn_run"]
    at.button(key="ul_launch").click().run()  # a second job waits: one job runs at a time
    second = at.session_state["unlearn_run"]
    assert second != first and RunStore().get(second).status == "queued"
    assert any(p.text.startswith("queued: position 1 of 1") for p in at.get("progress"))
    at.button(key=f"cancel_ul_{second}").click().run()
    assert RunStore().get(second).status == "cancelled"  # a queued job is cancelled at once

    at.session_state["unlearn_run"] = first
    deadline = time.monotonic() + 60
    while RunStore().get(first).progress.get("step", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    at.run()
    assert any(p.text.startswith("step ") and "ETA" in p.text for p in at.get("progress"))
    at.button(key=f"cancel_ul_{first}").click().run()
    assert wait_final(first).status == "cancelled"
    at.run()
    assert not at.exception
    assert any("cancelled" in w.value for w in at.warning)


def test_every_method_gets_widgets_for_every_config_field(home):
    from opc_core.methods import get_method, list_methods

    at = page("pages/unlearn.py", digits_choice())
    for method in list_methods():
        at.selectbox(key="ul_method").set_value(method).run()
        assert_clean(at)
        prefix = f"hp_{method}_digits_"
        keys = {
            w.key[len(prefix) :]
            for kind in ("number_input", "selectbox", "checkbox", "text_input")
            for w in getattr(at, kind)
            if w.key and w.key.startswith(prefix)
        }
        assert keys == {f["name"] for f in get_method(method).describe()["config"]}, method


def test_report_is_self_contained_html():
    import pandas as pd

    from opc_core.report import plots
    from opc_core.report.tables import report_html

    table = pd.DataFrame([{"run": "r1", "method": "opc", "UA": 99.5}, {"run": "r2", "method": "ft", "UA": 100.0}])
    fig = plots.recovery_bars(
        [
            {"method": "opc", "ua": 99.5, "recovered_ua": {"fm": 70.0}},
            {"method": "ft", "ua": 100.0, "recovered_ua": {"fm": 8.0}},
        ]
    )
    html = report_html("OPC Lab report", table, [fig, fig])
    assert html.startswith("<!doctype html>") and "OPC Lab report" in html and "<td>opc</td>" in html
    assert html.count("Plotly.newPlot") == 2  # both charts, plotly.js itself inlined once
    assert len(html) > 1_000_000  # plotly.js is in the file, not fetched
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']https?://", html)


def test_home_preset_submits_the_benchmark_and_opens_compare(home):
    from opc_core.runs.store import RunStore
    from opc_core.workflows.presets import preset_params

    at = page("app.py")
    at.button(key="home_preset_fast").click().run()
    assert_clean(at)
    assert at.title[0].value == "Compare"
    bench = RunStore().get(at.session_state["bench_run"])
    assert bench.kind == "bench" and bench.params == preset_params("fast")
    names = {m.split(":")[0] for m in bench.params.methods}
    assert {"opc_features", "ft", "retrain"} <= names and bench.params.forget_classes == [0, 1, 2]
    at.run()  # the compare page shows the job with a Cancel button while it is queued or running
    cancel = [b for b in at.button if b.key == f"cancel_cmp_{bench.id}"]
    assert cancel, [b.key for b in at.button]
    cancel[0].click().run()
    assert wait_final(bench.id).status == "cancelled"


def test_training_a_base_model_as_a_job(home):
    at = page("pages/model.py")
    at.selectbox(key="model_dataset").set_value("digits").run()
    at.number_input(key="tr_epochs").set_value(0.2)
    at.number_input(key="tr_seed").set_value(7)
    at.button[[b.label for b in at.button].index("Train")].click().run()
    run = wait_final(at.session_state["train_run"])
    assert run.status == "done", run.error
    at.run()
    assert_clean(at)
    assert any("Trained" in s.value for s in at.success)
    local = home / "zoo" / "digits__cnn_small__s7.safetensors"
    assert local.exists()
    assert any(o.startswith("digits__cnn_small__s7 (local)") for o in at.radio(key="model_pick").options)


def test_multi_run_pickers_default_to_the_newest_benchmark(home):
    from opc_core.runs.store import RunStore

    store = RunStore()
    common = {"dataset": "digits", "model": "cnn_small", "forget_classes": [0, 1]}
    alone = store.create("unlearn", {"method": "ft", **common}, status="done")
    bench = store.create("bench", {"methods": ["opc", "ft"], **common}, status="done")
    kids = [
        store.create(
            "unlearn",
            {"method": m, "label": label, **common},
            parent=bench.id,
            status="done",
        )
        for m, label in (("opc", "opc"), ("opc", "opc[layer=features]"), ("ft", "ft"))
    ]
    at = page("pages/recovery.py")
    assert_clean(at)
    picker = at.multiselect(key="rec_runs")
    assert picker.value == [k.id for k in kids]
    assert any(o.startswith("opc[layer=features] · digits · classes 0,1 · ") for o in picker.options)
    assert any(o.startswith("ft · digits · classes 0,1 · ") for o in picker.options) and alone.id not in str(
        picker.options
    )
    fs = page("pages/feature_space.py")  # one run: the benchmark's first
    assert_clean(fs)
    assert fs.selectbox(key="fs_run").value == kids[0].id


def readings(at: AppTest) -> int:
    from opc_core.report.text import READING_MARK

    return sum(READING_MARK in str(c.value) for c in at.caption)


def test_demo_shows_on_every_page_without_a_job(demo_home):
    """A first start imports the shipped demo: the home page says so, every page shows its results, every chart on
    the pages this test owns has its guided reading, and no job was launched."""
    from opc_core.runs.store import RunStore
    from opc_core.workflows.demo import DEMO_DIR, demo_available

    assert demo_available(DEMO_DIR), "assets/demo is missing: run scripts/make_demo.py"
    home_page = page("app.py")
    assert_clean(home_page)
    assert any("shipped demo" in s.value for s in home_page.success)
    store = RunStore()
    runs = store.list(kind="unlearn")
    assert len(runs) >= 8 and all(r.metrics.get("demo") for r in runs)
    assert {"opc", "opc_features", "retrain", "ft", "ga", "rl", "salun", "scrub"} <= {r.params.name for r in runs}

    ul = page("pages/unlearn.py")
    assert_clean(ul)
    charts = [json.loads(c.proto.spec) for c in ul.get("plotly_chart")]
    assert any("Loss terms" in str(c["layout"].get("title")) for c in charts)  # a demo run's stored loss curves
    assert readings(ul) == len(charts) and any(m.label == "UA" for m in ul.metric)
    for path in ("pages/recovery.py", "pages/inversion.py", "pages/feature_space.py"):
        other = page(path)
        assert_clean(other)
        if path == "pages/inversion.py":  # the cost of a launch, before it is launched
            assert any("This launch attacks up to" in c.value and " s each" in c.value for c in other.caption)
    cmp_ = page("pages/compare.py")
    assert_clean(cmp_)
    assert cmp_.multiselect(key="cmp_forget").value == ["classes 0,1,2"]
    assert len(cmp_.dataframe[0].value) == len(runs)
    assert readings(cmp_) == len(cmp_.get("plotly_chart")) >= 2
    assert "None" not in cmp_.dataframe[1].value.to_string()  # empty values are blank
    assert not store.list(status=("queued", "running"))


def _done_run(store, method: str, forget: list[int], status: str = "done", steps: int = 0):
    run = store.create("unlearn", {"method": method, "dataset": "digits", "model": "cnn_small"}, status="running")
    store.update(run.id, split={"mode": "class", "forget_classes": forget, "forget_ratio": None, "seed": 0})
    for s in range(1, steps + 1):
        store.append_step(run.id, s, steps, {"loss": 1.0 / s}, 0.1 * s, {"ua": 50.0, "ra": 90.0} if s == steps else {})
    store.update_metrics(run.id, {"ua": 90.0, "ra": 95.0, "ta": 94.0, "steps": steps})
    store.set_status(run.id, status)
    return store.get(run.id)


def test_unlearn_page_opens_any_past_run(home):
    from opc_core.runs.store import RunStore

    store = RunStore()
    old = _done_run(store, "ft", [0, 1], steps=7)
    _done_run(store, "ga", [0, 1], steps=3)
    at = page("pages/unlearn.py", digits_choice())
    assert_clean(at)
    assert at.selectbox(key="ul_open").value != old.id  # the newest by default
    at.selectbox(key="ul_open").set_value(old.id).run()
    assert_clean(at)
    loss = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Loss terms" in c.proto.spec]
    assert loss and loss[0]["data"][0]["x"] == list(range(1, 8))
    assert readings(at) == len(at.get("plotly_chart"))  # the split chart, the loss and UA/RA curves


def test_compare_defaults_to_the_newest_forget_set_and_hides_failures(home):
    from opc_core.runs.store import RunStore

    store = RunStore()
    _done_run(store, "ft", [0, 1])
    bench = store.create("bench", {"methods": ["ga"], "dataset": "digits", "forget_classes": [2, 3]}, status="done")
    kid = _done_run(store, "ga", [2, 3])
    store.update(kid.id, parent=bench.id)
    failed = _done_run(store, "rl", [2, 3], status="failed")
    at = page("pages/compare.py")
    assert_clean(at)
    assert at.multiselect(key="cmp_forget").value == ["classes 2,3"]
    assert at.dataframe[0].value["run"].tolist() == [kid.id]
    at.toggle(key="cmp_all").set_value(True).run()
    assert set(at.dataframe[0].value["run"]) == {kid.id, failed.id}
    assert "None" not in at.dataframe[1].value.to_string() and "nan" not in at.dataframe[1].value.to_string()
