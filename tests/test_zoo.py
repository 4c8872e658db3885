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


SHIPPED = [  # (dataset, model, floor): every checkpoint in assets/zoo, with the accuracy it must reach
    ("fashion_mnist_small", "cnn_small", 85.0),
    ("digits", "cnn_small", 97.0),
    ("fashion_mnist", "cnn_small", 90.0),  # the full 60k set (Debian's dataset-fashion-mnist; CI installs it)
    ("fashion_mnist_small", "resnet18", 82.0),  # stored in float16, loaded into the float32 model
    ("fashion_mnist_small", "vit_tiny", 76.0),  # 78.35% after 30 epochs of SGD on the CPU
]


def test_every_shipped_checkpoint_is_checked():
    listed = {(e.dataset, e.model) for e in list_checkpoints() if e.shipped}
    assert listed == {(d, m) for d, m, _ in SHIPPED}


@pytest.mark.parametrize("dataset,model,floor", SHIPPED)
def test_shipped_checkpoints_reach_their_accuracy(dataset, model, floor):
    entry = find_checkpoint(dataset, model)
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


# --- bad checkpoints: refused with a message that names the fix, and never able to break the zoo or a page -------
def _pair(tmp_path, model, data, **side) -> list[tuple[str, bytes]]:
    path = save_checkpoint(model, tmp_path / "m", _meta(data))
    meta = {**json.loads(path.with_suffix(".json").read_text()), **side}
    return [("m.safetensors", path.read_bytes()), ("m.json", json.dumps(meta).encode())]


def test_install_measures_the_accuracy_it_lists(tmp_path, monkeypatch, digits, digits_model):
    from opc_core.train.zoo import install_checkpoint

    monkeypatch.setenv("OPC_LAB_HOME", str(tmp_path / "home"))
    assert install_checkpoint(_pair(tmp_path, digits_model, digits, test_accuracy=12.0), "digits", digits) == "m"
    (entry,) = [e for e in list_checkpoints("digits") if e.name == "m"]
    assert entry.test_accuracy == round(accuracy(digits_model, digits, split="test"), 2) > 90  # not the claimed 12
    with pytest.raises(CheckpointError, match="'test_accuracy' must be a number in \\[0, 100\\] or null, got \"high\""):
        install_checkpoint(_pair(tmp_path, digits_model, digits, test_accuracy="high"), "digits", digits)


def test_non_finite_weights_are_refused(tmp_path, monkeypatch, digits, digits_model):
    from opc_core.models import create_model
    from opc_core.train.zoo import install_checkpoint

    monkeypatch.setenv("OPC_LAB_HOME", str(tmp_path / "home"))
    broken = create_model("cnn_small", 1, 10, 8)
    broken.load_state_dict(digits_model.state_dict())
    with torch.no_grad():
        next(broken.parameters())[0].fill_(float("nan"))
    path = save_checkpoint(broken, tmp_path / "nan", _meta(digits))
    with pytest.raises(CheckpointError, match="holds NaN or infinite values"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="NaN"):
        install_checkpoint(_pair(tmp_path, broken, digits, test_accuracy=99.5), "digits", digits)
    assert not (tmp_path / "home" / "zoo" / "m.safetensors").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"arch": ["cnn_small"]}, "field 'arch' must be a string"),
        ({"num_classes": "10"}, "field 'num_classes' must be an integer"),
        ({"in_channels": True}, "field 'in_channels' must be an integer"),
        ({"image_size": 10**9}, "field 'image_size' must be an integer"),
        ({"test_accuracy": float("nan")}, "field 'test_accuracy' must be a number"),
        ({"recipe": "fast"}, "field 'recipe' must be a JSON object"),
        ({"mean": ["x"]}, "field 'mean' must be a list of finite numbers"),
    ],
)
def test_sidecar_types_are_checked(tmp_path, digits, digits_model, edit, message):
    path = save_checkpoint(digits_model, tmp_path / "m", _meta(digits))
    side = path.with_suffix(".json")
    side.write_text(json.dumps({**json.loads(side.read_text()), **edit}))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_deeply_nested_or_huge_sidecar_is_refused(tmp_path, digits, digits_model):
    path = save_checkpoint(digits_model, tmp_path / "m", _meta(digits))
    path.with_suffix(".json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_checkpoint(path)
    path.with_suffix(".json").write_text(" " * (2 << 20) + "{}")
    with pytest.raises(CheckpointError, match="a sidecar is a small JSON file"):
        load_checkpoint(path)


def test_zoo_install_checks_the_size_before_reading(tmp_path, monkeypatch, capsys):
    from pathlib import Path

    from opc_core.cli.main import main

    monkeypatch.setenv("OPC_LAB_HOME", str(tmp_path / "home"))
    with open(tmp_path / "big.safetensors", "wb") as fh:
        fh.truncate(1 << 30)  # 1 GiB, sparse: costs no disk
    (tmp_path / "big.json").write_text("{}")
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"read {self.name} before the size check"))
    assert main(["zoo", "--install", str(tmp_path / "big.safetensors"), "--dataset", "digits"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: checkpoint too large: 1024.0 MiB (limit 200 MiB)"


def test_upload_names_the_cause_never_a_temp_path(tmp_path, monkeypatch, digits, digits_model):
    from opc_core.train.zoo import install_checkpoint

    monkeypatch.setenv("OPC_LAB_HOME", str(tmp_path / "home"))
    (w_name, w), (j_name, j) = _pair(tmp_path, digits_model, digits)
    with pytest.raises(ValueError, match="not a readable safetensors file") as err:
        install_checkpoint([("M.SAFETENSORS", b"junk"), ("M.json", j)], "digits", digits)
    assert "opc-upload" not in str(err.value) and "/tmp" not in str(err.value)
    with pytest.raises(ValueError, match="M.safetensors are missing: .*over the 200 MiB limit"):
        install_checkpoint([("M.json", j)], "digits", digits)  # what the page gets when the weights were too big
    assert install_checkpoint([("M.SAFETENSORS", w), ("M.json", j)], "digits", digits) == "M"
    assert [e.name for e in list_checkpoints("digits") if not e.shipped] == ["M"]


def test_a_bad_zoo_entry_is_skipped_and_named_and_the_pages_work(tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from opc_core.train.zoo import unreadable_checkpoints

    root = Path(__file__).resolve().parent.parent
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("OPC_LAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPC_LAB_WARM_WORKER", "0")
    zoo, shipped = tmp_path / "home" / "zoo", root / "assets" / "zoo" / "fashion_mnist_small__cnn_small__s0"
    zoo.mkdir(parents=True)
    side = json.loads(shipped.with_suffix(".json").read_text())
    (zoo / "bad.json").write_text(json.dumps({**side, "test_accuracy": "high"}))  # as installed before the checks
    (zoo / "bad.safetensors").write_bytes(shipped.with_suffix(".safetensors").read_bytes())
    assert "bad.json" in unreadable_checkpoints() and "test_accuracy" in unreadable_checkpoints()["bad.json"]
    assert find_checkpoint("fashion_mnist_small", "cnn_small").name == shipped.name
    for page in ("pages/model.py", "pages/unlearn.py"):
        at = AppTest.from_file(str(root / page), default_timeout=60).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        if page == "pages/model.py":
            assert any("bad.json" in w.value for w in at.warning)
