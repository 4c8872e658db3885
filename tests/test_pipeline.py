"""The headless unlearning workflow: a stored run with its steps, snapshots, checkpoint and metrics."""

from __future__ import annotations

import numpy as np
import torch

from opc_core.runs.store import RunStore
from opc_core.train.inference import features_and_logits
from opc_core.train.zoo import find_checkpoint
from opc_core.workflows.unlearn import N_SNAPSHOTS, unlearn_run


def test_unlearn_run_stores_snapshots_in_step_order(tmp_path, digits, digits_model):
    store = RunStore(tmp_path / "home")
    seen = []
    out = unlearn_run(
        "digits",
        "cnn_small",
        "opc",
        checkpoint=find_checkpoint("digits", "cnn_small").path,
        forget_classes=[0, 1],
        overrides={"max_steps": 24},
        store=store,
        on_step=seen.append,
        mia=False,
    )
    run = store.get(out["run_id"])
    assert run.status == "done" and out["steps"] == 24 and seen[-1].step == 24
    snaps = np.load(run.artifact_path("snapshots"))
    steps = snaps["steps"].tolist()
    # the original's snapshot (step 0) is taken after the run but stored first; then every ~total/N_SNAPSHOTS steps
    assert steps[0] == 0 and steps == sorted(steps) and steps[-1] == 24
    assert len(steps) == 1 + 24 // max(1, 24 // N_SNAPSHOTS)
    idx = torch.from_numpy(snaps["idx"])
    original_feats, _ = features_and_logits(digits_model, digits, idx)
    np.testing.assert_allclose(snaps["features"][0], original_feats.numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(snaps["features"][-1], snaps["features"][0])  # the unlearned features moved
    assert set(snaps["labels"][snaps["is_forget"]].tolist()) <= {0, 1}
