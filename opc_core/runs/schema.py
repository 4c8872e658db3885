"""The run store's SQLite schema and its upgrades (``PRAGMA user_version``)."""

from __future__ import annotations

import json
import logging
import sqlite3

from opc_core.env.jsonable import to_jsonable
from opc_core.runs.record import upgrade_config

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: typed parameter records in ``config``, a ``stage`` per step

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, title TEXT NOT NULL DEFAULT '',
    config TEXT NOT NULL DEFAULT '{}', split TEXT, parent TEXT, created REAL NOT NULL, started REAL, finished REAL,
    error TEXT, metrics TEXT NOT NULL DEFAULT '{}', artifacts TEXT NOT NULL DEFAULT '{}', pid INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0, progress TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_created ON runs(created);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, total INTEGER, elapsed_s REAL, losses TEXT NOT NULL DEFAULT '{}',
    evals TEXT NOT NULL DEFAULT '{}', epoch REAL, lr REAL, stage TEXT, PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
"""  # WITHOUT ROWID: the (run_id, step) primary key is the table's own clustered index, no second index needed


# list() leaves out a split's index lists (tens of KB of JSON per run, parsed on every poll of a page); get() has them
LIST_SELECT = (
    "SELECT id, kind, status, title, config, "
    "json_remove(split, '$.forget_idx', '$.retain_idx', '$.test_idx', '$.cal_idx') AS split, parent, created, "
    "started, finished, error, metrics, artifacts, pid, cancel_requested, progress FROM runs"
)

INSERT_STEP = (
    "INSERT OR REPLACE INTO steps (run_id, step, total, elapsed_s, losses, evals, epoch, lr, stage) "
    "VALUES (:run_id, :step, :total, :elapsed_s, :losses, :evals, :epoch, :lr, :stage)"
)


def set_up(con: sqlite3.Connection) -> None:
    """Create the tables, or upgrade an older file in place (idempotent)."""
    version = con.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        con.executescript(SCHEMA)  # idempotent DDL
        if version == 1:
            _upgrade_from_1(con)
        con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _upgrade_from_1(con: sqlite3.Connection) -> None:
    """Schema 1 -> 2: add the steps' stage column and store every readable config as its typed record."""
    if "stage" not in {r[1] for r in con.execute("PRAGMA table_info(steps)")}:
        con.execute("ALTER TABLE steps ADD COLUMN stage TEXT")
    for run_id, kind, config in con.execute("SELECT id, kind, config FROM runs").fetchall():
        try:
            typed = upgrade_config(kind, json.loads(config))
        except ValueError:
            typed = None
        if typed is not None:
            con.execute(
                "UPDATE runs SET config = ? WHERE id = ?", (json.dumps(to_jsonable(typed), allow_nan=False), run_id)
            )
        else:
            log.warning("run %s: its %s config could not be read as a typed record; left as it was", run_id, kind)
