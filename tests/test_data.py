"""Tests of opc_core.data: loaders (on small files written here), splits and augmentation."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from opc_core.data import (
    DATASETS,
    DatasetMissingError,
    ImageData,
    Split,
    augment,
    data_root,
    dataset_status,
    list_datasets,
    load_dataset,
    make_split,
    random_crop,
    random_flip,
    seeded_subset,
)
from opc_core.data import idx as idx_mod
from opc_core.data.cifar import restricted_load

ORDER = ["digits", "fashion_mnist_small", "fashion_mnist", "mnist", "cifar10", "cifar100", "svhn", "imagefolder"]
FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


# --- helpers --------------------------------------------------------------------------------------------------------
def write_idx(path: Path, arr: np.ndarray, gz: bool = False) -> Path:
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    raw = header + arr.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def write_mnist(root: Path, gz: bool, n_train: int = 30, n_test: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    folder = root / "MNIST" / "raw"
    folder.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % 10,
    }
    for name, arr in arrays.items():
        write_idx(folder / name, arr, gz)
    return arrays


def dump(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def write_cifar10(root: Path, per_batch: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    xs, ys = [], []
    for i in range(1, 6):
        x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, per_batch)]
        dump(folder / f"data_batch_{i}", {b"batch_label": b"training batch", b"data": x, b"labels": y})
        xs.append(x)
        ys += y
    dump(folder / "test_batch", {b"data": rng.integers(0, 256, (6, 3072), dtype=np.uint8), b"labels": [0, 1, 2] * 2})
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    dump(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    return np.concatenate(xs), np.asarray(ys)


class Evil:
    """Pickles to a call of os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: D105
        import os

        return (os.system, (f"touch {self.marker}",))


def synthetic(n_per_class: int = 10, k: int = 4, n_test_per_class: int = 6) -> ImageData:
    train_y = torch.arange(k).repeat_interleave(n_per_class)
    test_y = torch.arange(k).repeat(n_test_per_class)
    x = torch.zeros(len(train_y), 1, 8, 8, dtype=torch.uint8)
    t = torch.zeros(len(test_y), 1, 8, 8, dtype=torch.uint8)
    return ImageData("synthetic", x, train_y, t, test_y, [f"c{i}" for i in range(k)], (0.5,), (0.25,), False)


# --- built-in datasets ----------------------------------------------------------------------------------------------
def test_registry_order_and_root(monkeypatch, tmp_path):
    assert DATASETS.names() == ORDER
    monkeypatch.setenv("OPC_LAB_DATA", str(tmp_path / "d"))
    assert data_root() == tmp_path / "d"
    monkeypatch.delenv("OPC_LAB_DATA")
    monkeypatch.setenv("OPC_LAB_HOME", str(tmp_path / "h"))
    assert data_root() == tmp_path / "h" / "data"
    with pytest.raises(KeyError, match="digits"):
        load_dataset("no_such_dataset")


def test_digits():
    d = load_dataset("digits")
    assert d.train_x.dtype == torch.uint8 and d.train_y.dtype == torch.int64
    assert d.train_x.shape[1:] == (1, 8, 8) and len(d.train_y) + len(d.test_y) == 1797
    assert abs(len(d.test_y) - 0.2 * 1797) < 10
    assert d.classes == [str(i) for i in range(10)] and d.num_classes == 10
    assert (d.in_channels, d.image_size, d.natural) == (1, 8, False)
    assert int(d.train_x.max()) == 255 and set(d.test_y.tolist()) == set(range(10))
    assert load_dataset("digits") is d  # cached
    again = DATASETS.get("digits").loader(Path("."), False)
    assert torch.equal(again.test_x, d.test_x)  # deterministic split
    info = d.info()
    json.dumps(info)
    assert info["num_train"] == len(d.train_y) and info["mean"] == list(d.mean)


def test_fashion_small_and_normalize():
    d = load_dataset("fashion_mnist_small", device="cpu")
    assert d.train_x.shape == (10000, 1, 28, 28) and d.test_x.shape == (2000, 1, 28, 28)
    assert d.train_x.dtype == torch.uint8 and d.test_y.dtype == torch.int64
    assert d.classes == FASHION and not d.natural
    assert torch.bincount(d.train_y).tolist() == [1000] * 10 and torch.bincount(d.test_y).tolist() == [200] * 10
    assert 0.2 < d.mean[0] < 0.4 and 0.25 < d.std[0] < 0.45
    x = d.train_x[:64]
    z = d.normalize(x)
    assert z.dtype == torch.float32 and z.shape == x.shape
    assert abs(float(d.normalize(d.train_x).mean())) < 1e-3
    assert torch.allclose(d.denormalize(z), x.float() / 255, atol=1e-6)
    assert torch.allclose(d.normalize(x[0]), z[0])  # works unbatched too
    moved = d.to("cpu")
    assert moved is not d and moved.device == torch.device("cpu") and torch.equal(moved.train_y, d.train_y)


# --- IDX ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz)
    d = load_dataset("mnist", root=tmp_path)
    assert d.train_x.shape == (30, 1, 28, 28) and d.test_x.shape == (20, 1, 28, 28)
    assert np.array_equal(d.train_x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(d.test_y.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert d.train_y.dtype == torch.int64 and d.classes == [str(i) for i in range(10)] and not d.natural
    assert dataset_status("mnist", tmp_path)["available"]


def test_idx_corrupt(tmp_path):
    arrays = write_mnist(tmp_path, gz=False)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        load_dataset("mnist", root=tmp_path)
    path.write_bytes(b"\x12\x34\x08\x03" + b"\x00" * 20)
    with pytest.raises(ValueError, match="magic"):
        idx_mod.read_idx(path)
    gz = write_idx(tmp_path / "x-idx3-ubyte", arrays["train-images-idx3-ubyte"], gz=True)
    gz.write_bytes(gz.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated"):
        idx_mod.read_idx(gz)


def test_download_flow(tmp_path, monkeypatch):
    calls = []

    def fake_download(tv_class: str, root: Path) -> None:
        calls.append((tv_class, root))
        write_mnist(root, gz=True)

    monkeypatch.setattr(idx_mod, "_download", fake_download)
    d = load_dataset("mnist", root=tmp_path, download=True)
    assert calls == [("MNIST", tmp_path)] and d.train_x.shape == (30, 1, 28, 28)


def test_fashion_missing_mentions_apt(tmp_path, monkeypatch):
    monkeypatch.setattr(idx_mod, "DEBIAN_FASHION_DIR", tmp_path / "nowhere")
    with pytest.raises(DatasetMissingError) as err:
        load_dataset("fashion_mnist", root=tmp_path)
    msg = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in msg and str(tmp_path / "FashionMNIST" / "raw") in msg
    assert all(name in msg for name in idx_mod.IDX_FILES)


# --- CIFAR ----------------------------------------------------------------------------------------------------------
def test_cifar10(tmp_path):
    x, y = write_cifar10(tmp_path)
    d = load_dataset("cifar10", root=tmp_path)
    assert d.train_x.shape == (20, 3, 32, 32) and d.test_x.shape == (6, 3, 32, 32)
    assert np.array_equal(d.train_x.numpy(), x.reshape(-1, 3, 32, 32)) and d.train_y.tolist() == y.tolist()
    assert d.classes[0] == "airplane" and d.num_classes == 10 and d.natural and len(d.mean) == 3


def test_cifar100(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 12), ("test", 5)):
        dump(
            folder / name,
            {
                b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                b"fine_labels": [int(v) for v in rng.integers(0, 100, n)],
                b"coarse_labels": [0] * n,
            },
        )
    dump(folder / "meta", {b"fine_label_names": [f"class{i}".encode() for i in range(100)], b"coarse_label_names": []})
    d = load_dataset("cifar100", root=tmp_path)
    assert d.train_x.shape == (12, 3, 32, 32) and d.num_classes == 100 and d.classes[7] == "class7"
    assert d.test_y.dtype == torch.int64 and len(d.test_y) == 5


def test_restricted_unpickler(tmp_path):
    marker = tmp_path / "pwned"
    write_cifar10(tmp_path)
    dump(tmp_path / "cifar-10-batches-py" / "data_batch_3", {b"data": Evil(marker), b"labels": []})
    with pytest.raises(ValueError, match="data_batch_3: not a readable dataset batch file .*refusing .*system"):
        load_dataset("cifar10", root=tmp_path)
    assert not marker.exists()
    # Python-2-era module name of numpy's array reconstructor is accepted.
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    raw = pickle.dumps({b"a": arr}, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    (tmp_path / "old").write_bytes(raw)
    assert np.array_equal(restricted_load(tmp_path / "old")[b"a"], arr)


# --- SVHN -----------------------------------------------------------------------------------------------------------
def test_svhn(tmp_path):
    import scipy.io

    rng = np.random.default_rng(3)
    folder = tmp_path / "svhn"
    folder.mkdir()
    x = rng.integers(0, 256, (32, 32, 3, 7), dtype=np.uint8)  # (H, W, C, N)
    y = np.array([[10], [1], [2], [10], [9], [5], [3]], dtype=np.uint8)
    scipy.io.savemat(folder / "train_32x32.mat", {"X": x, "y": y})
    scipy.io.savemat(folder / "test_32x32.mat", {"X": x[..., :3], "y": y[:3]})
    d = load_dataset("svhn", root=tmp_path)
    assert d.train_y.tolist() == [0, 1, 2, 0, 9, 5, 3] and d.test_y.tolist() == [0, 1, 2]
    assert d.train_x.shape == (7, 3, 32, 32) and not d.natural
    assert torch.equal(d.train_x[4, 1], torch.from_numpy(x[:, :, 1, 4]))


# --- image folder ---------------------------------------------------------------------------------------------------
def _write_pngs(folder: Path, classes: dict[str, int], mode: str, size: tuple[int, int] = (40, 30)) -> None:
    from PIL import Image

    rng = np.random.default_rng(4)
    for name, n in classes.items():
        (folder / name).mkdir(parents=True)
        for i in range(n):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / name / f"{i}.png")
    (folder / next(iter(classes)) / "notes.txt").write_text("not an image")


def test_imagefolder_auto_split(tmp_path, monkeypatch):
    monkeypatch.delenv("OPC_LAB_IMAGEFOLDER", raising=False)
    _write_pngs(tmp_path / "imagefolder", {"dog": 5, "cat": 5}, "RGB")
    d = load_dataset("imagefolder", root=tmp_path)
    assert d.classes == ["cat", "dog"] and d.natural
    assert d.train_x.shape == (8, 3, 32, 32) and d.test_x.shape == (2, 3, 32, 32)
    assert sorted(d.test_y.tolist()) == [0, 1]


def test_imagefolder_env_train_test_gray(tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    _write_pngs(folder / "train", {"a": 3, "b": 2, "c": 2}, "L", (16, 16))
    _write_pngs(folder / "test", {"a": 1, "c": 2}, "L", (16, 16))
    monkeypatch.setenv("OPC_LAB_IMAGEFOLDER", str(folder))
    status = dataset_status("imagefolder", tmp_path / "elsewhere")
    assert status["available"] and status["folder"] == str(folder)
    d = load_dataset("imagefolder", root=tmp_path / "elsewhere")
    assert d.train_x.shape == (7, 1, 32, 32) and d.test_y.tolist() == [0, 2, 2]


# --- missing files and status ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "sub", "files"),
    [
        ("mnist", "MNIST/raw", idx_mod.IDX_FILES),
        ("cifar10", "cifar-10-batches-py", ("data_batch_1", "data_batch_5", "test_batch", "batches.meta")),
        ("cifar100", "cifar-100-python", ("train", "test", "meta")),
        ("svhn", "svhn", ("train_32x32.mat", "test_32x32.mat")),
    ],
)
def test_missing(tmp_path, name, sub, files):
    with pytest.raises(DatasetMissingError) as err:
        load_dataset(name, root=tmp_path)
    assert isinstance(err.value, FileNotFoundError)
    msg = str(err.value)
    assert str(tmp_path / sub) in msg and f"--download {name}" in msg
    assert all(f in msg for f in files)
    assert pickle.loads(pickle.dumps(err.value)).args == err.value.args
    status = dataset_status(name, tmp_path)
    assert not status["available"] and set(files) <= set(status["missing"])


def test_imagefolder_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("OPC_LAB_IMAGEFOLDER", raising=False)
    (tmp_path / "imagefolder" / "empty_class").mkdir(parents=True)
    with pytest.raises(DatasetMissingError, match="imagefolder"):
        load_dataset("imagefolder", root=tmp_path)


def test_list_datasets(tmp_path, monkeypatch):
    monkeypatch.delenv("OPC_LAB_IMAGEFOLDER", raising=False)
    rows = list_datasets(tmp_path)
    assert [r["name"] for r in rows] == ORDER
    by = {r["name"]: r for r in rows}
    assert by["digits"]["available"] and by["fashion_mnist_small"]["available"]
    assert not by["mnist"]["available"] and not by["imagefolder"]["available"]
    assert {"name", "description", "source", "available", "root", "missing"} <= set(by["svhn"])
    assert by["fashion_mnist_small"]["source"] == "embedded" and by["cifar10"]["source"] == "local"
    write_mnist(tmp_path, gz=True)
    assert dataset_status("mnist", tmp_path) | {"missing": []} == dataset_status("mnist", tmp_path)
    assert dataset_status("mnist", tmp_path)["available"]
    json.dumps(rows)


# --- splits ---------------------------------------------------------------------------------------------------------
def test_class_split(digits):
    before = digits.train_y.clone()
    s = make_split(digits, forget_classes=[3, 7], seed=0)
    assert s.mode == "class" and s.forget_classes == (3, 7) and s.forget_ratio is None
    y = digits.train_y
    assert set(y[s.forget_idx].tolist()) == {3, 7} and not set(y[s.retain_idx].tolist()) & {3, 7}
    assert len(s.forget_idx) == int(((y == 3) | (y == 7)).sum())
    both = torch.cat([s.forget_idx, s.retain_idx]).sort().values
    assert torch.equal(both, torch.arange(len(y)))
    assert torch.equal(s.forget_idx, s.forget_idx.sort().values) and s.forget_idx.dtype == torch.int64
    assert not set(s.test_idx.tolist()) & set(s.cal_idx.tolist())
    assert sorted(s.test_idx.tolist() + s.cal_idx.tolist()) == list(range(len(digits.test_y)))
    assert abs(len(s.test_idx) - len(s.cal_idx)) <= digits.num_classes
    for part in (s.test_idx, s.cal_idx):
        assert set(digits.test_y[part].tolist()) == set(range(10))
    assert make_split(digits, forget_classes=[7, 3], seed=0) == s
    other = make_split(digits, forget_classes=[3, 7], seed=1)
    assert not torch.equal(other.cal_idx, s.cal_idx) and torch.equal(other.forget_idx, s.forget_idx)
    assert torch.equal(digits.train_y, before)
    assert s.forget_idx.device.type == "cpu"


def test_random_split(digits):
    n = len(digits.train_y)
    s = make_split(digits, forget_ratio=0.1, seed=5)
    assert s.mode == "random" and s.forget_classes == () and s.forget_ratio == 0.1
    assert len(s.forget_idx) == round(0.1 * n) and len(s.forget_idx) + len(s.retain_idx) == n
    assert not set(s.forget_idx.tolist()) & set(s.retain_idx.tolist())
    assert make_split(digits, forget_ratio=0.1, seed=5) == s
    assert not torch.equal(make_split(digits, forget_ratio=0.1, seed=6).forget_idx, s.forget_idx)
    summary = s.summary()
    assert summary["n_forget"] == len(s.forget_idx) and "forget_idx" not in summary
    d = json.loads(json.dumps(s.to_dict()))
    back = Split.from_dict(d)
    assert back == s and back.forget_idx.dtype == torch.int64 and back.forget_ratio == 0.1


def test_seeded_subset():
    idx = torch.arange(100, 200)
    a = seeded_subset(idx, 10, seed=3)
    assert len(a) == 10 and torch.equal(a, a.sort().values) and len(set(a.tolist())) == 10
    assert set(a.tolist()) <= set(idx.tolist()) and a.dtype == torch.int64
    assert torch.equal(seeded_subset(idx, 10, seed=3), a) and not torch.equal(seeded_subset(idx, 10, seed=4), a)
    assert torch.equal(seeded_subset(idx, 500, seed=0), idx)  # n beyond the set: all of it, sorted
    assert len(seeded_subset(idx, 0, seed=0)) == 0
    # the draw is the first n of one seeded permutation, so a larger n extends a smaller one
    assert set(a.tolist()) <= set(seeded_subset(idx, 20, seed=3).tolist())
    with pytest.raises(ValueError, match="negative"):
        seeded_subset(idx, -1, seed=0)


def test_random_split_draws_the_seeded_subset(digits):
    n = len(digits.train_y)
    s = make_split(digits, forget_ratio=0.1, seed=5)
    assert torch.equal(s.forget_idx, seeded_subset(torch.arange(n), round(0.1 * n), 5))
    old = torch.randperm(n, generator=torch.Generator().manual_seed(5))[: round(0.1 * n)].sort().values
    assert torch.equal(s.forget_idx, old)  # stored random splits keep their meaning


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"forget_classes": [1], "forget_ratio": 0.1},
        {"forget_classes": []},
        {"forget_classes": [0, 1, 2, 3]},
        {"forget_classes": [1, 1]},
        {"forget_classes": [4]},
        {"forget_classes": [-1]},
        {"forget_classes": [1.5]},
        {"forget_ratio": 0.0},
        {"forget_ratio": 1.0},
        {"forget_ratio": -0.2},
        {"forget_ratio": 0.001},
    ],
)
def test_split_invalid(kwargs):
    with pytest.raises(ValueError):
        make_split(synthetic(), **kwargs)


def test_split_range_message():
    with pytest.raises(ValueError, match=r"0\.\.3"):
        make_split(synthetic(), forget_classes=[9])


# --- augmentation ---------------------------------------------------------------------------------------------------
def _is_crop(out: torch.Tensor, img: torch.Tensor, pad: int, mode: str) -> bool:
    padded = torch.nn.functional.pad(img[None].float(), (pad,) * 4, mode="constant" if mode == "zeros" else mode)[0]
    h, w = img.shape[-2:]
    return any(
        torch.equal(padded[:, i : i + h, j : j + w], out.float())
        for i in range(2 * pad + 1)
        for j in range(2 * pad + 1)
    )


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_random_crop(mode):
    x = torch.randint(0, 256, (24, 3, 10, 10), dtype=torch.uint8)
    out = random_crop(x, 2, torch.Generator().manual_seed(0), mode=mode)
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert all(_is_crop(out[i], x[i], 2, mode) for i in range(len(x)))
    assert not torch.equal(out, x)
    assert torch.equal(out, random_crop(x, 2, torch.Generator().manual_seed(0), mode=mode))


def test_flip_and_augment():
    x = torch.rand(64, 1, 16, 16)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(len(x))]
    assert all(f or torch.equal(out[i], x[i]) for i, f in enumerate(flipped)) and 10 < sum(flipped) < 54
    # Rows increase left to right; translation keeps that order, a flip reverses it.
    ramp = torch.arange(1, 17, dtype=torch.uint8).expand(64, 3, 16, 16).contiguous()

    def reversed_rows(y: torch.Tensor) -> int:
        count = 0
        for img in y:
            row = img[0, 8][img[0, 8] > 0]
            count += bool(row[0] > row[-1])
        return count

    plain = augment(ramp, natural=False, generator=torch.Generator().manual_seed(1))
    assert plain.shape == ramp.shape and plain.dtype == torch.uint8 and reversed_rows(plain) == 0
    nat = augment(ramp, natural=True, generator=torch.Generator().manual_seed(1))
    assert nat.dtype == torch.uint8 and reversed_rows(nat) > 10
    f = augment(torch.rand(5, 1, 8, 8), natural=True)
    assert f.dtype == torch.float32 and f.shape == (5, 1, 8, 8)
