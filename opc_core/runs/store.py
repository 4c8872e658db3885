"""The run store: every train / unlearn / attack / bench run, its streamed steps, metrics and artifact files.

One SQLite file ``<home>/runs.sqlite`` (stdlib ``sqlite3``, no ORM) holds two tables: ``runs`` (one row per run:
kind, status, config, split, timestamps, error text, metrics, artifact paths, worker pid, cancel flag, last progress)
and ``steps`` (one row per reported optimiser step: losses and periodic evals). Each run also owns an artifact folder
``<home>/runs/<run_id>/`` (checkpoints, embeddings, images, ``log.txt``).

Concurrency: the database runs in WAL mode, so readers (dashboard pages polling every second) never block the writer
(the worker process appending steps) and vice versa. Each thread (and process) uses its own connection, opened on
first use, so a ``RunStore`` is safe to share between threads and to pickle into another process (only the home path
travels); every write is one ``BEGIN IMMEDIATE`` transaction, so a reader sees a run either before or after a write,
never half of it. Schema version in ``PRAGMA user_version``.

JSON columns are written with NaN/inf replaced by ``null`` (``json.dumps(float("nan"))`` is not valid JSON), and
numpy/torch scalars or arrays turned into plain numbers/lists.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opc_core.env import paths
from opc_core.env.jsonable import to_jsonable
from opc_core.runs import schema
from opc_core.runs.liveness import pid_alive
from opc_core.runs.record import make_params, params_dict
from opc_core.runs.run import FINAL, STATUSES, Run

log = logging.getLogger(__name__)

_JSON_COLUMNS = ("config", "split", "metrics", "artifacts", "progress")
BUSY_TIMEOUT_MS = 5000


def dumps(obj: Any) -> str:
    """Strict JSON text of ``to_jsonable(obj)``."""
    return json.dumps(to_jsonable(obj), allow_nan=False)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class RunStore:
    """The run store of one home folder (default ``opc_core.env.paths.home()``, i.e. ``$OPC_LAB_HOME``)."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home).expanduser() if home is not None else paths.home()
        if self.home.exists() and not self.home.is_dir():
            raise ValueError(f"the OPC Lab home {self.home} is a file, not a folder: point OPC_LAB_HOME at a folder")
        self.home.mkdir(parents=True, exist_ok=True)
        self.db_path = self.home / "runs.sqlite"
        self.runs_root = self.home / "runs"
        self.unreadable: dict[str, str] = {}  # run id -> why list() skipped it
        self._local = threading.local()
        try:
            self._set_up()
        except sqlite3.DatabaseError as exc:
            raise ValueError(
                f"{self.db_path} is not a readable run store ({exc}); move it aside and OPC Lab starts a new one"
            ) from None

    def _set_up(self) -> None:
        con = self._open()
        try:  # set up once per file: WAL is persistent, and a current user_version means the tables exist
            if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")
            schema.set_up(con)
        finally:
            con.close()

    def __repr__(self) -> str:
        return f"RunStore({str(self.home)!r})"

    # --- connections ---------------------------------------------------------------------------------------------
    def __getstate__(self) -> dict:  # picklable (e.g. into a Ray task): connections stay behind
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _local=threading.local())

    def _open(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        con.row_factory = sqlite3.Row
        con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    def _con(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use, never shared across threads or processes).

        Kept open rather than opened per call: closing the last connection checkpoints and deletes the WAL, which
        turns every write into several disk syncs (docs/architecture.md, "Measured").
        """
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.con, local.pid = self._open(), os.getpid()
        return local.con

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        yield self._con()  # autocommit: every statement sees the latest committed state

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One atomic transaction; BEGIN IMMEDIATE takes the write lock up front (no upgrade deadlocks)."""
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _row_to_run(self, r: sqlite3.Row) -> Run:
        d = dict(r)
        for col in _JSON_COLUMNS:
            try:
                d[col] = _loads(d[col])
            except ValueError as exc:
                raise UnreadableRun(f"run {d['id']}: its {col} is not valid JSON ({exc})") from None
        d["cancel_requested"] = bool(d["cancel_requested"])
        return Run(**d, folder=self.runs_root / d["id"])

    # --- runs ------------------------------------------------------------------------------------------------------
    def create(
        self,
        kind: str,
        params: Any,
        *,
        split: dict | None = None,
        parent: str | None = None,
        title: str | None = None,
        status: str = "queued",
        pid: int | None = None,
    ) -> Run:
        """Insert a new run; its id is ``YYYYmmdd-HHMMSS-`` plus 6 random hex digits (local time).

        Args:
            kind: a registered run kind (:mod:`opc_core.runs.record`).
            params: its typed parameters (or a mapping of them, checked against the kind's record).
            split: the split's ``to_dict()``, when the run uses one.
            parent: id of the run this one derives from (e.g. the unlearn run an attack evaluates).
            title: a human label (default: the kind).
            status: initial status.
            pid: process that owns the run: for a queued run, the process whose job manager queued it (None: queued
                by other code, e.g. a Ray sweep driver); a run created ``running`` defaults to this process.
        """
        _check_status(status)
        now = time.time()
        if status == "running" and pid is None:
            pid = os.getpid()  # e.g. the CLI running a method in-process: alive while this process is
        row = dict(
            kind=kind,
            status=status,
            title=title or kind,
            config=dumps(params_dict(make_params(kind, params))),
            parent=parent,
            created=now,
            split=None if split is None else dumps(split),
            pid=pid,
            started=now if status == "running" else None,
            finished=now if status in FINAL else None,
        )
        sql = f"INSERT INTO runs (id, {', '.join(row)}) VALUES ({', '.join('?' * (len(row) + 1))})"
        for _ in range(20):
            run_id = time.strftime("%Y%m%d-%H%M%S-", time.localtime(now)) + secrets.token_hex(3)
            try:
                with self._write() as con:
                    con.execute(sql, (run_id, *row.values()))
                break
            except sqlite3.IntegrityError:  # same second and same 24 random bits: draw again
                continue
        else:
            raise RuntimeError("could not draw a unique run id")
        return self.get(run_id)

    def get(self, run_id: str) -> Run:
        """The run ``run_id``; ``KeyError`` if there is none."""
        with self._read() as con:
            row = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id!r} in {self.db_path}")
        return self._row_to_run(row)

    def exists(self, run_id: str) -> bool:
        with self._read() as con:
            return con.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None

    def list(
        self,
        kind: str | None = None,
        status: str | tuple[str, ...] | None = None,
        parent: str | None = None,
        limit: int | None = None,
        oldest_first: bool = False,
    ) -> list[Run]:
        """Runs matching every given filter, newest first (``oldest_first`` for FIFO order).

        Each run's ``split`` is its summary (mode, forget_classes, forget_ratio, seed) without the index lists, which
        make listing ~10x slower; :meth:`get` returns the whole split.
        """
        where, args = [], []
        for col, value in (("kind", kind), ("status", status), ("parent", parent)):
            if value is not None:
                values = (value,) if isinstance(value, str) else tuple(value)
                where.append(f"{col} IN ({', '.join('?' * len(values))})")
                args.extend(values)
        order = "ASC" if oldest_first else "DESC"
        sql = schema.LIST_SELECT + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += f" ORDER BY created {order}, rowid {order}" + (" LIMIT ?" if limit is not None else "")
        if limit is not None:
            args.append(int(limit))
        with self._read() as con:
            rows = con.execute(sql, args).fetchall()
        runs = []
        for r in rows:
            try:
                runs.append(self._row_to_run(r))
            except UnreadableRun as exc:  # one bad row never hides the others: skipped, and named
                self.unreadable[r["id"]] = str(exc)
                log.warning("skipped %s", exc)
        return runs

    def set_status(
        self,
        run_id: str,
        status: str,
        *,
        error: str | None = None,
        pid: int | None = None,
        expect: str | tuple[str, ...] | None = None,
    ) -> bool:
        """Move a run to ``status``.

        ``running`` with a ``pid`` (re)sets ``started`` to now (the run starts in that process); a final status sets
        ``finished``. ``error`` and ``pid`` are written when given.

        Args:
            expect: only update when the current status is one of these (an atomic compare-and-set: used to claim a
                queued run or cancel it without racing the dispatcher). Returns whether the row changed.

        Raises:
            KeyError: without ``expect``, when the run does not exist.
        """
        _check_status(status)
        now = time.time()
        sets, args = ["status = ?"], [status]
        if status == "running":
            sets.append("started = ?" if pid is not None else "started = COALESCE(started, ?)")
            args.append(now)
        if status in FINAL:
            sets.append("finished = ?")
            args.append(now)
        if error is not None:
            sets.append("error = ?")
            args.append(error)
        if pid is not None:
            sets.append("pid = ?")
            args.append(int(pid))
        sql = f"UPDATE runs SET {', '.join(sets)} WHERE id = ?"
        args.append(run_id)
        if expect is not None:
            expected = (expect,) if isinstance(expect, str) else tuple(expect)
            sql += f" AND status IN ({', '.join('?' * len(expected))})"
            args.extend(expected)
        with self._write() as con:
            changed = con.execute(sql, args).rowcount > 0
        if not changed and expect is None:
            raise KeyError(f"no run {run_id!r} in {self.db_path}")
        return changed

    def update(
        self,
        run_id: str,
        *,
        title: str | None = None,
        config: dict | None = None,
        split: dict | None = None,
        parent: str | None = None,
    ) -> None:
        """Set the given descriptive fields of a run (e.g. a job's task stores the split it built)."""
        values = {
            "title": title,
            "parent": parent,
            "config": None if config is None else dumps(config),
            "split": None if split is None else dumps(split),
        }
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            with self._write() as con:
                sql = f"UPDATE runs SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?"
                if con.execute(sql, (*values.values(), run_id)).rowcount == 0:
                    raise KeyError(f"no run {run_id!r} in {self.db_path}")

    # --- steps, metrics, artifacts ---------------------------------------------------------------------------------
    def append_step(
        self,
        run_id: str,
        step: int,
        total: int,
        losses: dict,
        elapsed_s: float,
        evals: dict | None = None,
        *,
        epoch: float | None = None,
        lr: float | None = None,
    ) -> None:
        """Record one step (replacing an earlier record of the same step) and update the run's ``progress``."""
        self.append_steps(
            run_id, [dict(step=step, total=total, losses=losses, elapsed_s=elapsed_s, evals=evals, epoch=epoch, lr=lr)]
        )

    def append_steps(self, run_id: str, records: list[dict]) -> None:
        """Record several steps in one transaction (what a throttled ``on_step`` flushes)."""
        if not records:
            return
        rows = [
            {
                "epoch": None,
                "lr": None,
                **r,
                "run_id": run_id,
                "losses": dumps(r.get("losses") or {}),
                "evals": dumps(r.get("evals") or {}),
                "stage": None if r.get("stage") is None else dumps(r["stage"]),
            }
            for r in records
        ]
        last = max(records, key=lambda r: int(r["step"]))
        progress = {k: last.get(k) for k in ("step", "total", "elapsed_s", "losses", "stage")}
        with self._write() as con:
            con.executemany(schema.INSERT_STEP, rows)
            con.execute("UPDATE runs SET progress = ? WHERE id = ?", (dumps(progress), run_id))

    def steps(self, run_id: str, after: int = 0) -> list[dict]:
        """Step records with ``step > after`` in step order: ``{step, total, elapsed_s, losses, evals, epoch, lr,
        stage}`` (``stage``: which part of a multi-part run the step belongs to, or None)."""
        with self._read() as con:
            rows = con.execute(
                "SELECT * FROM steps WHERE run_id = ? AND step > ? ORDER BY step", (run_id, int(after))
            ).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            del d["run_id"]
            out.append({**d, "losses": _loads(d["losses"]), "evals": _loads(d["evals"]), "stage": _loads(d["stage"])})
        return out

    def _merge_json(self, run_id: str, column: str, update: dict) -> None:
        with self._write() as con:  # read-modify-write inside one transaction: concurrent merges never lose keys
            row = con.execute(f"SELECT {column} FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(f"no run {run_id!r} in {self.db_path}")
            merged = {**_loads(row[0]), **to_jsonable(update)}
            con.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (dumps(merged), run_id))

    def update_metrics(self, run_id: str, metrics: dict) -> None:
        """Merge ``metrics`` into the run's metrics (top-level keys replace)."""
        self._merge_json(run_id, "metrics", metrics)

    def artifact_dir(self, run_id: str) -> Path:
        """The run's artifact folder, created on demand."""
        folder = self.runs_root / run_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def add_artifact(self, run_id: str, name: str, path: Path | str) -> None:
        """Record artifact ``name``; a path inside the run folder is stored relative to it, any other absolute."""
        path = Path(path).resolve()
        try:
            stored = str(path.relative_to((self.runs_root / run_id).resolve()))
        except ValueError:
            stored = str(path)
        self._merge_json(run_id, "artifacts", {name: stored})

    # --- cancel, delete, recovery ----------------------------------------------------------------------------------
    def request_cancel(self, run_id: str) -> None:
        """Raise the run's cancel flag; its worker (any process) sees it within ~0.3 s."""
        with self._write() as con:
            if con.execute("UPDATE runs SET cancel_requested = 1 WHERE id = ?", (run_id,)).rowcount == 0:
                raise KeyError(f"no run {run_id!r} in {self.db_path}")

    def cancel_requested(self, run_id: str) -> bool:
        with self._read() as con:
            row = con.execute("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row[0])

    def delete(self, run_id: str) -> None:
        """Remove the run's row, its steps and its artifact folder. A running run must be cancelled first."""
        run = self.get(run_id)
        if run.status == "running" and pid_alive(run.pid, run.started):
            raise ValueError(f"run {run_id} is running (pid {run.pid}); cancel it before deleting it")
        with self._write() as con:
            con.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
            con.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        shutil.rmtree(self.runs_root / run_id, ignore_errors=True)


class UnreadableRun(ValueError):
    """A stored run whose row cannot be read (e.g. hand-edited JSON)."""


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown run status {status!r}; valid: {', '.join(STATUSES)}")
