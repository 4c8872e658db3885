"""The shipped demo: a finished shallow-vs-deep comparison exported from a run store into ``assets/demo`` and imported
into a fresh one, so that every page shows real results before any job is launched.

``scripts/make_demo.py`` runs the comparison with the project's own workflows and calls :func:`export_demo`; the
dashboard calls :func:`import_demo` once per home folder. The export keeps the runs' ids (their cross references --
a benchmark's children, the inversion gallery's keys -- stay valid), their step records, and the files the pages read
(checkpoints, stored maps, the inversion gallery); it leaves out the high-dimensional feature snapshots (megabytes per
run, needed only to draw a new map). Machine paths become ``@zoo/NAME`` / ``@runs/ID/FILE`` tokens on export and local
paths again on import. Every imported run carries ``metrics["demo"] = True``.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opc_core.env import paths
from opc_core.runs.store import RunStore, dumps

DEMO_DIR = paths.ASSETS / "demo"
MANIFEST = "demo.json.gz"
MARKER = "demo-imported"  # in the home folder: the demo was imported once (deleting its runs keeps them deleted)
FORMAT = "opc-lab-demo/1"
SKIP_ARTIFACTS = ("snapshots",)  # large; the stored maps replace them
COLUMNS = ("id", "kind", "status", "title", "config", "split", "parent", "created", "started", "finished", "error")


def _map_paths(obj: Any, fn: Callable[[str], str]) -> Any:
    """``obj`` with ``fn`` applied to every string inside it (dicts and lists walked)."""
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_paths(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_paths(v, fn) for v in obj]
    return obj


def _to_tokens(store: RunStore) -> Callable[[str], str]:
    roots = {str(paths.SHIPPED_ZOO.resolve()): "@zoo", str(store.runs_root.resolve()): "@runs"}

    def fn(text: str) -> str:
        for root, token in roots.items():
            if text.startswith(root + "/"):
                return token + text[len(root) :]
        return text

    return fn


def _from_tokens(store: RunStore) -> Callable[[str], str]:
    roots = {"@zoo/": str(paths.SHIPPED_ZOO.resolve()) + "/", "@runs/": str(store.runs_root.resolve()) + "/"}

    def fn(text: str) -> str:
        for token, root in roots.items():
            if text.startswith(token):
                return root + text[len(token) :]
        return text

    return fn


def _files(run) -> list[Path]:
    """The run's artifact files to ship (a checkpoint with its JSON sidecar), relative to its folder."""
    out = []
    for name, rel in run.artifacts.items():
        path = run.artifact_path(name)
        if name in SKIP_ARTIFACTS or Path(rel).is_absolute() or not path.exists():
            continue
        out.append(Path(rel))
        if path.suffix == ".safetensors" and path.with_suffix(".json").exists():
            out.append(Path(rel).with_suffix(".json"))
    return out


def export_demo(store: RunStore, bench_id: str, out: Path | str = DEMO_DIR) -> dict[str, Any]:
    """Write a finished benchmark, its children and their files into ``out`` (replacing an earlier demo there).

    Returns:
        ``{"runs": n, "bytes": total size written}``.
    """
    bench = store.get(bench_id)
    if bench.kind != "bench" or not bench.done:
        raise ValueError(f"run {bench_id} is a {bench.status} {bench.kind} run; the demo needs a finished benchmark")
    runs = [bench, *(store.get(r.id) for r in store.list(parent=bench_id, oldest_first=True))]
    out = Path(out)
    shutil.rmtree(out / "runs", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    tokens = _to_tokens(store)
    manifest: dict[str, Any] = {"format": FORMAT, "runs": [], "steps": {}}
    for run in runs:
        files = _files(run)
        row = {c: getattr(run, c) for c in COLUMNS}
        row["metrics"] = _map_paths({**run.metrics, "demo": True}, tokens)
        row["artifacts"] = {k: v for k, v in run.artifacts.items() if k not in SKIP_ARTIFACTS and Path(v) in files}
        row["title"] = f"shipped demo · {run.title}"
        manifest["runs"].append(row)
        manifest["steps"][run.id] = store.steps(run.id)
        for rel in files:
            dest = out / "runs" / run.id / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if rel.suffix == ".json":  # a checkpoint's sidecar names its parent checkpoint by path
                meta = json.loads((run.folder / rel).read_text())
                dest.write_text(json.dumps(_map_paths(meta, tokens), indent=1))
            else:
                shutil.copyfile(run.folder / rel, dest)
    with gzip.open(out / MANIFEST, "wt", encoding="utf-8") as fh:
        fh.write(dumps(manifest))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"runs": len(runs), "bytes": size}


def demo_available(src: Path | str = DEMO_DIR) -> bool:
    return (Path(src) / MANIFEST).exists()


def import_demo(store: RunStore, src: Path | str = DEMO_DIR, force: bool = False) -> list[str]:
    """Import the shipped demo into ``store`` once (a marker file in its home remembers it); returns the new run ids.

    Runs already in the store are left alone. ``force`` imports again (e.g. after the demo runs were deleted).
    """
    src = Path(src)
    marker = store.home / MARKER
    if not demo_available(src) or (marker.exists() and not force):
        return []
    with gzip.open(src / MANIFEST, "rt", encoding="utf-8") as fh:
        manifest = json.load(fh)
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{src / MANIFEST} is not an {FORMAT} file")
    local = _from_tokens(store)
    added = []
    for row in manifest["runs"]:
        if store.exists(row["id"]):
            continue
        folder = store.artifact_dir(row["id"])
        for path in (src / "runs" / row["id"]).rglob("*"):
            if path.is_file():
                dest = folder / path.relative_to(src / "runs" / row["id"])
                dest.parent.mkdir(parents=True, exist_ok=True)
                if path.suffix == ".json":
                    dest.write_text(json.dumps(_map_paths(json.loads(path.read_text()), local), indent=1))
                else:
                    shutil.copyfile(path, dest)
        values = {c: row[c] for c in COLUMNS}
        for col in ("config", "split"):
            values[col] = None if values[col] is None else dumps(values[col])
        values["metrics"] = dumps(_map_paths(row["metrics"], local))
        values["artifacts"] = dumps(row["artifacts"])
        sql = f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})"
        with store._write() as con:  # the store's own transaction; ids are kept so cross references hold
            con.execute(sql, tuple(values.values()))
        store.append_steps(row["id"], manifest["steps"].get(row["id"], []))
        added.append(row["id"])
    marker.write_text("the shipped demo was imported; delete this file to import it again\n")
    return added


def is_demo(run) -> bool:
    """Whether a stored run came with the shipped demo."""
    return bool(run.metrics.get("demo"))
