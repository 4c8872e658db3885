"""Unlearning methods for tests/test_sweep.py that end a cell badly: ``t_fail`` raises, ``t_exit`` kills the process
running it (a Ray worker dying mid-cell). The test registers them in its own process with :func:`register` and
removes them with :func:`unregister`, so no other test sees them among the methods; a Ray worker registers them when
it imports this module through ``$OPC_LAB_PLUGINS``."""

from __future__ import annotations

import os

from opc_core.methods import METHODS, Plan, UnlearnConfig, register_method

PLUGIN = "tests.sweep_fixtures"
DRIVER_PID_ENV = "OPC_TEST_DRIVER_PID"  # the test's own process: t_exit never kills it


def _fail(model, batch, ctx):
    raise RuntimeError("t_fail: this cell fails on purpose")


def _exit(model, batch, ctx):
    if str(os.getpid()) == os.environ.get(DRIVER_PID_ENV):
        raise RuntimeError("t_exit only kills a process other than the test's own")
    os._exit(3)  # the worker dies without a word, as after an out-of-memory kill


LOSSES = {"t_fail": _fail, "t_exit": _exit}


def register() -> None:
    for name, loss in LOSSES.items():
        if name not in METHODS:
            register_method(name, UnlearnConfig, f"test method {name}", plan=Plan(streams=("retain",)))(loss)


def unregister() -> None:
    for name in LOSSES:
        METHODS._entries.pop(name, None)


if os.environ.get(DRIVER_PID_ENV) not in (None, str(os.getpid())):
    register()  # a Ray worker of the test's sweep
