"""``python -m opc_core ...``: one sub-command per workflow."""
