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


@pytest.mark.parametrize("cmd", ["datasets", "zoo", "train", "methods", "unlearn", "attack", "bench"])
def test_help(cmd):
    assert "usage" in run_cli(cmd, "--help").stdout
