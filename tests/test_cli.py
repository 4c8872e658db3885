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
    assert html.startswith("<!doctype html>") and all(r["run_id"] in html for r in runs)
    assert html.count("Plotly.newPlot") == 1  # the UA/RA/TA/MIA bars (no recovery results yet)
    csv_lines = (tmp_path / "rep" / "runs.csv").read_text().splitlines()
    assert csv_lines[0].startswith("run,status,method,dataset") and len(csv_lines) == 3
    records = json.loads((tmp_path / "rep" / "runs.json").read_text())
    assert [r["metrics"]["ua"] for r in records] == [r["ua"] for r in runs]
    only_ft = json.loads(run_cli("report", "--out", str(tmp_path / "ft"), "--method", "ft", "--json", home=home).stdout)
    assert only_ft["runs"] == [runs[1]["run_id"]]
    missing = run_cli("report", "--out", str(tmp_path / "x"), "--runs", "no-such-run", home=home, check=False)
    assert missing.returncode == 2 and "no-such-run" in missing.stderr


@pytest.mark.parametrize("cmd", ["datasets", "zoo", "train", "methods", "unlearn", "attack", "bench", "report"])
def test_help(cmd):
    assert "usage" in run_cli(cmd, "--help").stdout
