"""Checkpoints: safetensors + JSON sidecar round-trip, refusal of anything wrong, and the shipped zoo."""

import json
import pickle

import pytest
import torch

from opc_core.data import load_dataset
from opc_core.train.inference import accuracy
from opc_core.train.zoo import CheckpointError, find_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint


def _meta(data):
    return {"dataset": data.name, "classes": data.classes, "mean": list(data.mean), "std": list(data.std)}


def test_round_trip(tmp_path, digits, digits_model):
    path = save_checkpoint(digits_model, tmp_path / "m", _meta(digits))
    assert path.suffix == ".safetensors" and path.with_suffix(".json").exists()
    model, meta = load_checkpoint(path, device="cpu")
    x = digits.normalize(digits.test_x[:16])
    torch.testing.assert_close(model(x), digits_model(x))
    assert meta["arch"] == "cnn_small" and meta["num_classes"] == 10 and "torch" in meta["versions"]


def test_corrupt_weights_refused(tmp_path, digits, digits_model):
    path = save_checkpoint(digits_model, tmp_path / "m", _meta(digits))
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_checkpoint(path)


def test_pickle_is_never_executed(tmp_path, digits, digits_model):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = save_checkpoint(digits_model, tmp_path / "m", _meta(digits))
    path.write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "field,value,match", [("arch", "nope", "unknown"), ("num_classes", 5, "shape"), ("in_channels", 3, "shape")]
)
def test_wrong_sidecar_refused(tmp_path, digits, digits_model, field, value, match):
    path = save_checkpoint(digits_model, tmp_path / "m", _meta(digits))
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta[field] = value
    side.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_expectations_checked(tmp_path, digits, digits_model):
    path = save_checkpoint(digits_model, tmp_path / "m", _meta(digits))
    with pytest.raises(CheckpointError, match="class count"):
        load_checkpoint(path, expect_num_classes=3)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    path.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="JSON"):
        load_checkpoint(path)


@pytest.mark.parametrize("dataset,floor", [("fashion_mnist_small", 85.0), ("digits", 97.0)])
def test_shipped_checkpoints_reach_their_accuracy(dataset, floor):
    entry = find_checkpoint(dataset, "cnn_small")
    assert entry is not None and entry.shipped
    model, meta = load_checkpoint(entry.path, device="cpu")
    data = load_dataset(dataset, device="cpu")
    acc = accuracy(model, data, split="test")
    assert acc >= floor
    assert abs(acc - meta["test_accuracy"]) < 0.5  # the sidecar tells the truth
    assert meta["recipe"]["seed"] == meta["seed"]


def test_zoo_listing_has_required_fields():
    rows = [e.to_dict() for e in list_checkpoints()]
    assert rows and all({"name", "dataset", "model", "test_accuracy", "path"} <= set(r) for r in rows)
