"""Bad input never crashes, poisons or hangs: every command and every config field refuses bad values with one
error line and leaves the run store and the zoo as they were; runs that diverge end ``failed`` naming the step and
the loss term; bad data files give one line naming the file; the dashboard listens on this machine only."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import torch

from opc_core.attacks import get_attack, list_attacks
from opc_core.attacks.inversion import InversionConfig
from opc_core.cli.main import main
from opc_core.config import build_config, describe_fields
from opc_core.data import load_dataset, make_split
from opc_core.methods import get_method, list_methods, make_config
from opc_core.runs.store import RunStore
from opc_core.train.loop import NonFiniteLossError
from opc_core.train.zoo import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "assets" / "zoo"


def bad_values(field: dict) -> list[str]:
    """Values a field must refuse, from its type and range: NaN, +-inf, huge, wrong type, below its minimum."""
    if field.get("choices") is not None:
        return ["nope", "nan", "7777"]
    if field["type"] == "bool":
        return ["maybe", "2", "nan"]
    if field["type"] not in ("int", "float"):
        return []  # a free string: nothing is wrong by type alone
    out = ["nan", "inf", "-inf", "1e30", "abc", "[1]"]
    if field.get("min") is not None:
        out += [str(field["min"] - 1)] + (["0"] if field["min"] > 0 else [])
    return out + (["1.5"] if field["type"] == "int" else [])


def _cases(prefix: list[str], fields: list[dict]) -> list[tuple[list[str], str]]:
    cases = [([*prefix, "--set", f"{f['name']}={v}"], f["name"]) for f in fields for v in bad_values(f)]
    return cases + [([*prefix, "--set", "nosuchkey=1"], "nosuchkey")]


UNLEARN = [["unlearn", "--dataset", "digits", "--method", m, "--no-mia"] for m in list_methods()]
ATTACK_FIELDS = {f["name"]: f for a in list_attacks() for f in describe_fields(get_attack(a).config)}
FLAGS = (
    [
        (["train", "--dataset", "digits", "--model", "cnn_small", flag, v], flag.strip("-").replace("-", "_"))
        for flag in ("--epochs", "--lr", "--batch-size", "--seed")
        for v in ("nan", "inf", "-inf", "-1", "0", "1e30", "abc", "99999999999999999999")
        if not (flag == "--seed" and v == "0")
    ]
    + [(["train", "--dataset", "digits", "--model", "cnn_small", "--epochs", "0.01"], "epochs")]
    + [
        (["unlearn", "--dataset", "digits", "--method", "ft", "--forget-ratio", v], "forget")
        for v in ("nan", "1", "-1", "0")
    ]
)
FLAGS += [(["unlearn", "--dataset", "digits", "--method", "ft", "--seed", v], "seed") for v in ("-1", "1e30", "abc")]
FLAGS += [(["attack", "inversion", "--run", "x", "--images", v], "images") for v in ("-3", "0", "100000", "abc")]
FLAGS += [(["bench", "--dataset", "digits", "--images", v], "images") for v in ("-1", "abc")]
FLAGS += [(["bench", "--dataset", "digits", "--methods", "opc:lr=nan"], "lr"), (["train", "--model", "x"], "dataset")]
FLAGS += [(["unlearn", "--dataset", "nope", "--method", "ft"], "nope"), (["unlearn", "--method", "nope"], "nope")]
CASES = (
    [c for cmd in UNLEARN for c in _cases(cmd, describe_fields(get_method(cmd[4]).config))]
    + _cases(["attack", "recovery", "--run", "x"], list(ATTACK_FIELDS.values()))
    + _cases(["attack", "inversion", "--run", "x"], describe_fields(InversionConfig))
    + FLAGS
)


def _zoo_state() -> list[tuple[str, int]]:
    from opc_core.env import paths

    return sorted((str(p), p.stat().st_mtime_ns) for d in (SHIPPED, paths.local_zoo()) for p in d.iterdir())


def test_every_command_and_field_refuses_bad_values_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPC_LAB_HOME", str(tmp_path / "home"))
    zoo = _zoo_state()
    assert len(CASES) > 500
    for argv, key in CASES:
        code = main(argv)
        err = capsys.readouterr().err.strip()
        where = f"{' '.join(argv)} -> {code} {err!r}"
        assert code == 2 and err.startswith("error: ") and "\n" not in err, where
        assert key in err.replace("-", "_") or key in err, where
    assert not (tmp_path / "home" / "runs.sqlite").exists() or RunStore(tmp_path / "home").list() == []
    assert _zoo_state() == zoo


@pytest.mark.parametrize("cls", [TrainConfig, InversionConfig, *(get_attack(a).config for a in list_attacks())])
def test_every_config_field_refuses_bad_values(cls):
    for field in describe_fields(cls):
        for value in bad_values(field):
            with pytest.raises(ValueError, match=field["name"]):
                build_config(cls, overrides={field["name"]: value})


def test_unknown_attack_setting_lists_the_valid_ones():
    from opc_core.workflows.attack import _configs

    with pytest.raises(ValueError, match=r"unknown attack setting\(s\) \['iteratons'\]; valid: .*'eps'"):
        _configs(list_attacks(), {"iteratons": 5})
    cfgs = _configs(list_attacks(), {"eps": "0.01", "k": 3})
    assert cfgs["fm"].eps == 0.01 and cfgs["prototype"].k == 3


def test_zoo_json_is_strict_json_and_names_a_bad_entry(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPC_LAB_HOME", str(tmp_path))
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    side = json.loads((SHIPPED / "digits__cnn_small__s0.json").read_text())
    (zoo / "nan.json").write_text(json.dumps({**side, "test_accuracy": float("nan")}))
    (zoo / "nan.safetensors").write_bytes((SHIPPED / "digits__cnn_small__s0.safetensors").read_bytes())
    assert main(["zoo", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert "nan" not in {r["name"] for r in rows} and {"digits__cnn_small__s0"} <= {r["name"] for r in rows}


# --- numbers: a run whose loss turns NaN or infinite fails, naming the step and the term ---------------------------
def _broken(data):
    """The dataset with a zero std: every normalised batch holds inf / NaN, so any loss on it is non-finite."""
    return dataclasses.replace(data, std=(0.0,) * data.in_channels)


@pytest.mark.parametrize("method", list_methods())
def test_every_method_stops_on_a_non_finite_loss(digits, digits_model, method):
    split = make_split(digits, forget_classes=[0, 1], seed=0)
    cfg = make_config(method, {"max_steps": 3})
    before = {k: v.clone() for k, v in digits_model.state_dict().items()}
    with pytest.raises(NonFiniteLossError, match=r"non-finite at step 1 of \d+ \(\w+ = (nan|inf|-inf)"):
        get_method(method)(digits_model, _broken(digits), split, cfg)
    assert all(torch.equal(before[k], v) for k, v in digits_model.state_dict().items())  # the original untouched


def test_training_stops_on_a_non_finite_loss(digits):
    from opc_core.models import create_model
    from opc_core.train.zoo import fit_classifier

    model = create_model("cnn_small", 1, 10, 8)
    cfg = TrainConfig(max_steps=3)
    with pytest.raises(NonFiniteLossError, match=r"step 1 of 3 \(ce = nan"):
        fit_classifier(model, _broken(digits), torch.arange(64), cfg)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # refused before the step


def test_a_diverging_run_ends_failed_naming_step_and_term(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPC_LAB_HOME", str(tmp_path))
    code = main(["unlearn", "--dataset", "digits", "--method", "ga", "--set", "lr=10", "--no-mia"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    (run,) = RunStore(tmp_path).list()
    assert code == 1 and "NonFiniteLossError" in err and "non-finite at step" in err
    assert run.status == "failed" and "forget_ce = nan" in run.error and run.artifact_path("checkpoint") is None


def test_train_never_overwrites_a_checkpoint(tmp_path, monkeypatch, capsys):
    from opc_core.train.zoo import train_destination

    monkeypatch.setenv("OPC_LAB_HOME", str(tmp_path / "home"))
    assert train_destination("digits", "cnn_small", 0).name == "digits__cnn_small__s0-2"  # the shipped name is taken
    assert train_destination("digits", "cnn_small", 7).name == "digits__cnn_small__s7"
    argv = ["train", "--dataset", "digits", "--model", "cnn_small", "--epochs", "0.1", "--seed", "7", "--json"]
    paths = [json.loads((main(argv), capsys.readouterr().out)[1])["path"] for _ in range(2)]
    assert [Path(p).stem for p in paths] == ["digits__cnn_small__s7", "digits__cnn_small__s7-2"]
    (tmp_path / "mine.safetensors").write_bytes(b"keep")
    assert main([*argv[:-1], "--out", str(tmp_path / "mine")]) == 2
    assert "already exists" in capsys.readouterr().err and (tmp_path / "mine.safetensors").read_bytes() == b"keep"
    assert len(RunStore(tmp_path / "home").list()) == 2  # the refused one was never stored


# --- data: one line naming the file or the folder ------------------------------------------------------------------
def _png(path: Path, size: tuple[int, int] = (8, 8), header: tuple[int, int] | None = None) -> None:
    """A grey PNG; ``header`` rewrites the declared width/height only (a decompression bomb costs no disk here)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", size, 128).save(buf, "PNG")
    raw = bytearray(buf.getvalue())
    if header is not None:
        raw[16:24] = struct.pack(">II", *header)  # IHDR width, height
        raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(raw))


def test_imagefolder_skips_a_decompression_bomb(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("OPC_LAB_IMAGEFOLDER", str(tmp_path / "imgs"))
    for cls in ("a", "b"):
        for i in range(3):
            _png(tmp_path / "imgs" / cls / f"{i}.png")
    _png(tmp_path / "imgs" / "a" / "bomb.png", header=(20000, 20000))
    data = load_dataset("imagefolder", root=tmp_path / "r1")
    assert len(data.train_y) + len(data.test_y) == 6 and "bomb.png" in caplog.text


@pytest.mark.parametrize(
    ("layout", "message"),
    [({"a": 2, "b": 0}, "empty class folder(s) b"), ({"a": 3}, "a second class folder")],
)
def test_imagefolder_needs_two_classes_with_images(tmp_path, monkeypatch, capsys, layout, message):
    from opc_core.data import dataset_status

    monkeypatch.setenv("OPC_LAB_IMAGEFOLDER", str(tmp_path / "imgs"))
    for cls, n in layout.items():
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(n):
            _png(tmp_path / "imgs" / cls / f"{i}.png")
    status = dataset_status("imagefolder", tmp_path)
    assert not status["available"] and message in status["missing"][0]
    monkeypatch.setenv("OPC_LAB_HOME", str(tmp_path / "home"))
    assert main(["train", "--dataset", "imagefolder", "--model", "cnn_small", "--root", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, None], ids=["empty", "garbage", "truncated"])
def test_a_bad_cifar_batch_is_one_line_naming_the_file(tmp_path, content):
    import pickle

    import numpy as np

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        (folder / name).write_bytes(batch)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"x"] * 10}))
    (folder / "data_batch_3").write_bytes(batch[: len(batch) // 2] if content is None else content)
    with pytest.raises(ValueError, match="data_batch_3: not a readable dataset batch file"):
        load_dataset("cifar10", root=tmp_path)


def test_download_offline_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from urllib.error import URLError

    import opc_core.data.cifar as cifar

    def offline(tv_class, root):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(cifar, "_download", offline)
    assert main(["datasets", "--download", "cifar10", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Downloading them failed (URLError" in err and "cifar-10-batches-py" in err


# --- the dashboard listens on this machine only ----------------------------------------------------------------------
def test_streamlit_requirement_reads_the_config_beside_app_py():
    import streamlit
    from packaging.version import Version

    line = next(x for x in (ROOT / "requirements.txt").read_text().splitlines() if x.startswith("streamlit"))
    assert Version(line.split(">=")[1].split(",")[0]) >= Version("1.46")  # reads <script dir>/.streamlit/config.toml
    assert Version(streamlit.__version__) >= Version("1.46")
    assert 'address = "127.0.0.1"' in (ROOT / ".streamlit" / "config.toml").read_text()


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) listening on ``port``."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                out.append(local.rsplit(":", 1)[0])
    return out


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the socket table of Linux")
def test_dashboard_started_elsewhere_listens_on_loopback_only(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, HOME=str(tmp_path), OPC_LAB_HOME=str(tmp_path / "home"))
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--server.headless", "true"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while not _listening(port) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.3)
        addresses = _listening(port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert addresses and set(addresses) == {"0100007F"}, addresses  # 127.0.0.1, and no other interface


def test_a_remote_browser_is_refused_when_the_server_listens_everywhere(monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.syspath_prepend(str(ROOT))
    import pages._address as guard

    assert [guard.is_loopback(h) for h in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "localhost")] == [True] * 4
    assert not any(guard.is_loopback(h) for h in ("10.0.0.2", "0.0.0.0", "", None, "example.org"))
    monkeypatch.setattr(guard, "client_address", lambda: "10.0.0.2")

    def app():
        from pages._address import refuse_remote_sessions

        refuse_remote_sessions()
        import streamlit as st

        st.write("the app")

    for bound, refused in ((None, True), ("127.0.0.1", False), ("0.0.0.0", False)):  # an explicit address: asked for
        monkeypatch.setattr(guard, "bound_address", lambda b=bound: b)
        at = AppTest.from_function(app).run()
        assert bool(at.error) == refused and (not at.markdown) == refused and not at.exception
        assert not refused or "127.0.0.1" in at.error[0].value


def test_non_finite_message_reads_the_logs():
    from opc_core.train.loop import nonfinite_message

    text = nonfinite_message(4, 9, torch.tensor(math.inf), {"ce": torch.tensor(1.0), "norm": math.inf})
    assert text.startswith("the loss became non-finite at step 4 of 9 (norm = inf)")
