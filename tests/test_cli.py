"""The headless command line: each sub-command's JSON contract, run as a user would (a subprocess)."""

import json
import os
import subprocess
import sys

import pytest


def run_cli(*args: str, home=None, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPC_LAB_DEVICE="cpu")
    if home is not None:
        env["OPC_LAB_HOME"] = str(home)
    out = subprocess.run(
        [sys.executable, "-m", "opc_core", *args], capture_output=True, text=True, env=env, timeout=600
    )
    if check:
        assert out.returncode == 0, out.stderr[-2000:]
    return out


def test_datasets_json():
    rows = json.loads(run_cli("datasets", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert {
        "digits",
        "fashion_mnist_small",
        "fashion_mnist",
        "mnist",
        "cifar10",
        "cifar100",
        "svhn",
        "imagefolder",
    } <= set(by_name)
    assert by_name["digits"]["available"] and by_name["fashion_mnist_small"]["available"]


def test_zoo_json_lists_shipped_checkpoints():
    rows = json.loads(run_cli("zoo", "--json").stdout)
    shipped = {(r["dataset"], r["model"]): r for r in rows if r["shipped"]}
    assert shipped[("fashion_mnist_small", "cnn_small")]["test_accuracy"] >= 85
    assert shipped[("digits", "cnn_small")]["test_accuracy"] >= 97
    assert all({"name", "dataset", "model", "test_accuracy", "path"} <= set(r) for r in rows)


def test_train_json_writes_a_loadable_checkpoint(tmp_path):
    meta = json.loads(
        run_cli(
            "train",
            "--dataset",
            "digits",
            "--model",
            "cnn_small",
            "--epochs",
            "3",
            "--seed",
            "1",
            "--out",
            str(tmp_path / "ck"),
            "--json",
            home=tmp_path,
        ).stdout
    )
    assert meta["test_accuracy"] > 50 and meta["seed"] == 1 and meta["recipe"]["epochs"] == 3
    assert (tmp_path / "ck.safetensors").exists() and (tmp_path / "ck.json").exists()


def test_missing_dataset_is_a_clear_error(tmp_path):
    env_root = tmp_path / "empty"
    out = run_cli("train", "--dataset", "cifar10", "--model", "cnn_small", "--root", str(env_root), check=False)
    assert out.returncode == 2
    assert "data_batch_1" in out.stderr and "test_batch" in out.stderr


def test_unknown_model_lists_valid_names():
    out = run_cli("train", "--dataset", "digits", "--model", "nope", check=False)
    assert out.returncode == 2 and "cnn_small" in out.stderr


def test_zoo_install_validates_then_lists_the_checkpoint(tmp_path):
    run_cli(
        "train",
        "--dataset",
        "digits",
        "--model",
        "cnn_small",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "mine"),
        home=tmp_path / "home",
    )
    rows = json.loads(
        run_cli(
            "zoo",
            "--install",
            str(tmp_path / "mine.safetensors"),
            "--dataset",
            "digits",
            "--json",
            home=tmp_path / "home",
        ).stdout
    )
    mine = [r for r in rows if r["name"] == "mine"]
    assert len(mine) == 1 and not mine[0]["shipped"] and mine[0]["dataset"] == "digits"
    again = run_cli(
        "zoo",
        "--install",
        str(tmp_path / "mine.safetensors"),
        "--dataset",
        "digits",
        home=tmp_path / "home",
        check=False,
    )
    assert again.returncode == 2 and "already in the zoo" in again.stderr
    wrong = run_cli(
        "zoo",
        "--install",
        str(tmp_path / "mine.safetensors"),
        "--dataset",
        "fashion_mnist_small",
        home=tmp_path / "other",
        check=False,
    )  # 8x8 digits weights on 28x28 images: refused
    assert wrong.returncode == 2 and "expects 8px images" in wrong.stderr
    assert not any(r["name"] == "mine" for r in json.loads(run_cli("zoo", "--json", home=tmp_path / "other").stdout))


def test_report_exports_html_csv_json_of_finished_runs(tmp_path):
    home = tmp_path / "home"
    runs = [
        json.loads(
            run_cli(
                "unlearn",
                "--dataset",
                "digits",
                "--model",
                "cnn_small",
                "--method",
                method,
                "--forget-classes",
                "0,1",
                "--set",
                "max_steps=8",
                "--no-mia",
                "--json",
                home=home,
            ).stdout
        )
        for method in ("opc", "ft")
    ]
    out = json.loads(run_cli("report", "--out", str(tmp_path / "rep"), "--json", home=home).stdout)
    assert out["runs"] == [r["run_id"] for r in runs]
    html = (tmp_path / "rep" / "report.html").read_text()
    assert html.startswith("<!doctype html>") and all(f"{r['label']} · digits · classes 0,1" in html for r in runs)
    assert html.count("Plotly.newPlot") == 1  # the UA/RA/TA/MIA bars (no recovery results yet)
    csv_lines = (tmp_path / "rep" / "runs.csv").read_text().splitlines()
    assert csv_lines[0].startswith("name,status,method,dataset") and csv_lines[0].endswith(",run")
    assert len(csv_lines) == 3 and [line.rsplit(",", 1)[1] for line in csv_lines[1:]] == [r["run_id"] for r in runs]
    records = json.loads((tmp_path / "rep" / "runs.json").read_text())
    assert [r["metrics"]["ua"] for r in records] == [r["ua"] for r in runs]
    only_ft = json.loads(run_cli("report", "--out", str(tmp_path / "ft"), "--method", "ft", "--json", home=home).stdout)
    assert only_ft["runs"] == [runs[1]["run_id"]]
    missing = run_cli("report", "--out", str(tmp_path / "x"), "--runs", "no-such-run", home=home, check=False)
    assert missing.returncode == 2 and "no-such-run" in missing.stderr


@pytest.mark.parametrize("cmd", ["datasets", "zoo", "train", "methods", "unlearn", "attack", "bench", "report"])
def test_help(cmd):
    assert "usage" in run_cli(cmd, "--help").stdout


def _store(home):
    from opc_core.runs.store import RunStore

    return RunStore(home)


def test_unlearn_attack_and_bench_leave_the_same_records_as_the_dashboard(tmp_path):
    home = tmp_path / "home"
    base = ("--dataset", "digits", "--forget-classes", "0,1", "--no-mia", "--json")
    run = json.loads(run_cli("unlearn", "--method", "ft", "--set", "max_steps=6", *base, home=home).stdout)
    store = _store(home)
    stored = store.get(run["run_id"])
    assert stored.status == "done" and stored.params.overrides == {"max_steps": "6"} and run["steps"] == 6
    assert len(store.steps(run["run_id"])) == 6  # CLI runs store their loss curve too
    rec = json.loads(run_cli("attack", "recovery", "--run", run["run_id"], "--json", home=home).stdout)
    attack = store.get(rec["attack_run"])  # the CLI's recovery creates an attack run, as the page's job does
    assert attack.kind == "attack" and attack.status == "done" and attack.params.run_ids == [run["run_id"]]
    assert rec["recovered_ua"]["fm"] == store.get(run["run_id"]).metrics["recovery"]["fm"]["recovered_ua"]
    inv = json.loads(
        run_cli(
            "attack", "inversion", "--run", run["run_id"], "--images", "2", "--set", "iterations=3", "--json", home=home
        ).stdout
    )
    assert store.get(inv["attack_run"]).status == "done" and {"original", run["run_id"]} <= set(inv["inversion"])
    bench = json.loads(
        run_cli(
            "bench",
            "--dataset",
            "digits",
            "--methods",
            "opc:max_steps=4,ga:max_steps=2,retrain:max_steps=2",
            "--forget-classes",
            "0,1",
            "--images",
            "0",
            "--json",
            home=home,
        ).stdout
    )
    children = store.list(parent=bench["run_id"], oldest_first=True)
    assert store.get(bench["run_id"]).status == "done" and [c.params.name for c in children] == [
        "opc[max_steps=4]",
        "ga[max_steps=2]",
        "retrain[max_steps=2]",
    ]
    assert [r["run_id"] for r in bench["rows"]] == [c.id for c in children]


@pytest.mark.parametrize(("sig", "status", "code"), [("SIGINT", "cancelled", 130), ("SIGTERM", "interrupted", 143)])
def test_ctrl_c_and_sigterm_of_a_cli_run_are_recorded(tmp_path, sig, status, code):
    import signal
    import time

    home = tmp_path / "home"
    env = dict(os.environ, OPC_LAB_DEVICE="cpu", OPC_LAB_HOME=str(home))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opc_core",
            "unlearn",
            "--dataset",
            "digits",
            "--method",
            "ft",
            "--set",
            "max_steps=100000",
            "--no-mia",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        # a suite started in the background (``cmd &`` without job control) passes SIGINT on as ignored, and Python
        # then never raises KeyboardInterrupt: give the child the default disposition, as a terminal would
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = _store(home).list() if (home / "runs.sqlite").exists() else []
        if runs and runs[0].progress.get("step", 0) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    (run,) = _store(home).list()
    assert proc.returncode == code and "Traceback" not in err
    assert run.status == status and run.finished is not None and 3 <= run.progress["step"] < 100000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("unlearn", "--dataset", "digits", "--method", "ft", "--seed", "99999999999999999999"), "seed must be"),
        (("unlearn", "--dataset", "digits", "--method", "ft", "--set", "lr"), "expected key=value"),
        (("train", "--dataset", "digits", "--model", "cnn_small", "--epochs", "0"), "epochs must be a number > 0"),
        (("train", "--dataset", "digits", "--model", "cnn_small", "--batch-size", "-5"), "batch_size must be"),
        (("attack", "inversion", "--run", "x", "--images", "0"), "n_images must be"),
    ],
)
def test_bad_values_give_one_error_line_and_leave_the_store_empty(tmp_path, args, message):
    out = run_cli(*args, home=tmp_path / "home", check=False)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "home" / "runs.sqlite").exists() or _store(tmp_path / "home").list() == []


def test_report_refuses_a_file_as_its_folder(tmp_path):
    (tmp_path / "taken").write_text("mine")
    home = tmp_path / "home"
    run_cli("unlearn", "--dataset", "digits", "--method", "ft", "--set", "max_steps=2", "--no-mia", home=home)
    out = run_cli("report", "--out", str(tmp_path / "taken"), home=home, check=False)
    assert out.returncode == 2 and "is a file" in out.stderr and (tmp_path / "taken").read_text() == "mine"
