"""What the three proofs' pages (Feature space, Recovery, Inversion) share: a run's depth numbers beside each map, the
references (original, retrain) and the calibration setting beside every recovered UA."""

from __future__ import annotations

import math

import streamlit as st

from opc_core.methods.opc import method_label as display_name
from opc_core.report.tables import method_label
from pages._services import store
from pages._widgets import INFO

DEPTH_HELP = {
    "fm": "UA left after the paper's FM attack (higher = still forgotten under a linear read-out).",
    "probe_inside": "Accuracy of a linear probe telling the forget classes apart from each other, on the unlearned "
    "features of D_f alone (two-fold cross-validation). Near chance = collapsed; near the original's = the classes "
    "are all still there, however small the cluster looks.",
    "separation_kept": "Fisher ratio (between-class ÷ within-class scatter) of the forget classes after ÷ before. "
    "Scale-free: 0 = one point, 1 = as separable as in the original model.",
    "radius": "Mean distance of D_f's features to their centroid ÷ the same for D_r. Depends on scale: a small "
    "radius can still hold perfectly separable classes.",
}


def _num(v, fmt: str = "{:.1f}") -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def calibration_note(run) -> str:
    """The calibration setting the run's attacks used, for the caption beside every FM/HR number."""
    s = run.metrics.get("recovery_settings") or {}
    cal = "D_cal without the forget classes" if s.get("cal_exclude_forget") else "D_cal with the forget classes"
    return f"{cal} (the fixed half of the test split), ridge ε {s.get('eps', 1e-3):g}"


def depth_metrics(run, container=None) -> None:
    """Beside a map: UA after FM, probe inside D_f (with chance), separation kept, and the radius (labelled)."""
    box = container or st
    m = run.metrics
    diag, rec = m.get("diagnostic") or {}, m.get("recovery") or {}
    rep = m.get("representation") or {}
    cols = box.columns(4)
    cols[0].metric("UA after FM", _num((rec.get("fm") or {}).get("recovered_ua")), help=DEPTH_HELP["fm"])
    chance = _num(diag.get("probe_inside_chance"), "{:.0f}")
    cols[1].metric(
        f"Probe inside D_f (chance {chance}%)",
        _num(diag.get("probe_inside")),
        help=DEPTH_HELP["probe_inside"],
    )
    cols[2].metric("Separation kept", _num(diag.get("separation_kept"), "{:.2f}"), help=DEPTH_HELP["separation_kept"])
    cols[3].metric("Radius (scale-dependent)", _num(rep.get("contraction_radius"), "{:.3f}"), help=DEPTH_HELP["radius"])
    if not diag:
        box.caption("Run the attacks on the **Recovery** page to see the FM and probe numbers of this run.")
    else:
        box.caption(f"Attacks on {calibration_note(run)}.")


def retrain_reference(run):
    """The retrain run of the same dataset, model and split (a sibling in a benchmark first), or None."""
    from opc_core.workflows.attack import matching_retrain

    rid = matching_retrain(store().get(run.id), store())
    return store().get(rid) if rid else None


def reference_rows(runs: list) -> list[dict]:
    """The bars' reference rows for these runs: the original model (its UA and the attacks on it) and retrain."""
    rows = []
    first = next((r for r in runs if r.metrics.get("recovery_original")), None)
    if first is not None:
        o = first.metrics.get("original") or {}
        rec = first.metrics["recovery_original"]
        rows.append(
            {
                "method": "original (reference)",
                "ua": o.get("ua"),
                "recovered_ua": {a: v.get("recovered_ua") for a, v in rec.items()},
            }
        )
    retrain = retrain_reference(runs[0]) if runs else None
    if retrain is not None and "recovery" in retrain.metrics and retrain.id not in {r.id for r in runs}:
        rows.append(
            {
                "method": f"retrain (reference, {retrain.id[-6:]})",
                "ua": retrain.metrics.get("ua"),
                "recovered_ua": {a: v.get("recovered_ua") for a, v in retrain.metrics["recovery"].items()},
            }
        )
    return rows


def display(run) -> str:
    """The run's method as the pages name it: "OPC (paper: logits)", "OPC-features", "ft", ..."""
    return display_name(method_label(run) or run.kind)


def run_name(run) -> str:
    return f"{display(run)} ({run.id[-6:]})"


def _predictions(ckpt: str, x, data):
    import numpy as np
    import pandas as pd
    import torch

    from pages._services import checkpoint_model

    model = checkpoint_model(ckpt)
    with torch.inference_mode():
        p = torch.softmax(model(data.normalize(torch.from_numpy(x)[None])), 1)[0].numpy()  # (K,)
    top = np.argsort(p)[::-1][:3]
    return pd.DataFrame({"class": [data.classes[i] for i in top], "probability (%)": (100 * p[top]).round(1)})


def one_image(run, emb: dict, data, events: list) -> None:
    """A clicked (or typed) point of the maps: its image and its top predictions before and after."""
    import numpy as np

    from opc_core.report.tables import run_params
    from pages._widgets import to_image

    idx, labels, is_f = np.asarray(emb["idx"]), np.asarray(emb["labels"]), np.asarray(emb["is_forget"])
    with st.expander("One image, before and after (click a point in a map)"):
        picked = [p for ev in events for p in (ev.selection.points if ev and ev.selection else [])]
        custom = picked[0].get("customdata") if picked else None
        key = f"fs_point_{run.id}"
        if custom is not None and st.session_state.get("fs_picked") != (key, int(np.ravel(custom)[0])):
            st.session_state["fs_picked"] = (key, int(np.ravel(custom)[0]))  # a new click moves the number input
            st.session_state[key] = min(int(np.ravel(custom)[0]), len(idx) - 1)
        pos = st.number_input("Point (click one in a map, or type its number)", 0, len(idx) - 1, key=key)
        x = data.train_x[int(idx[pos])].numpy()
        cols = st.columns([1, 2, 2])
        what = "forget" if is_f[pos] else "retain"
        cols[0].image(to_image(x, 112), caption=f"{data.classes[int(labels[pos])]} ({what})")
        original = run.metrics.get("original_checkpoint") or run_params(run).get("checkpoint")
        for col, name, ckpt in (
            (cols[1], "Original model", original),
            (cols[2], f"After {display(run)}", str(run.artifact_path("checkpoint"))),
        ):
            col.caption(name)
            col.dataframe(_predictions(ckpt, x, data), hide_index=True)


def diagnostic_table(runs: list):
    """One row per run: FM on the whole features, on the head's row space and null space, the probe inside D_f with
    the original's and chance, the separation kept, and the radius (scale-dependent)."""
    import pandas as pd

    rows = []
    for r in runs:
        d, rep = r.metrics.get("diagnostic") or {}, r.metrics.get("representation") or {}
        rows.append(
            {
                "run": run_name(r),
                "UA after FM": d.get("fm_full_ua"),
                "FM, row space only": d.get("fm_row_ua"),
                "FM, null space only": d.get("fm_null_ua"),
                "D_f variance in null space (%)": d.get("null_share_forget"),
                "probe inside D_f (%)": d.get("probe_inside"),
                "… original model": d.get("probe_inside_original"),
                "… chance": d.get("probe_inside_chance"),
                "separation kept": d.get("separation_kept"),
                "radius (scale-dependent)": rep.get("contraction_radius"),
            }
        )
    return pd.DataFrame(rows).round(2)


def gallery_header(gallery, names: dict) -> None:
    """PSNR / SSIM per model beside the no-information references, the start used, and the inconclusive mark."""
    import pandas as pd

    from opc_core.attacks.inversion.references import MARGIN_DB, REFERENCES
    from opc_core.report import text as ui_text

    refs = gallery.reference_means()
    if gallery.inconclusive:
        st.warning(
            f"Inconclusive: the original model's reconstructions are not {MARGIN_DB:g} dB above every no-information "
            "reference, so low scores of the unlearned models say nothing here (try more iterations or the "
            "dataset-mean start).",
            icon=INFO,
        )
    others = [store().get(k) for k in gallery.keys if k != "original" and store().exists(k)]
    if not any(r.kind == "unlearn" and r.params.method == "retrain" for r in others):
        st.caption("No retrain run of this split was found: run retrain on it to have the reference in the gallery.")

    base = float(gallery.models["original"].psnr.mean()) if "original" in gallery.models else None
    rows = []
    for k in gallery.keys:  # one row per model, then the no-information references: readable for any count
        rec = gallery.models[k]
        psnr = float(rec.psnr.mean())
        name = "original" if k == "original" else f"{names.get(k, k)} ({k[-6:]})"
        rows.append(
            {
                "model": name,
                "PSNR (dB)": psnr,
                "SSIM": float(rec.ssim.mean()),
                "vs original (dB)": "" if base is None or k == "original" else f"{psnr - base:+.1f}",
            }
        )
    for k, label in REFERENCES.items():
        if k in refs:
            rows.append(
                {
                    "model": f"without the gradient: {label}",
                    "PSNR (dB)": refs[k]["psnr"],
                    "SSIM": refs[k]["ssim"],
                    "vs original (dB)": "",
                }
            )
    left, right = st.columns([3, 1])
    left.dataframe(
        pd.DataFrame(rows).round({"PSNR (dB)": 1, "SSIM": 3}),
        hide_index=True,
        height=35 * (len(rows) + 1) + 3,  # every row visible: no scrolling to find the references
        width="stretch",
        column_config={
            "PSNR (dB)": st.column_config.NumberColumn(help=ui_text.explain("psnr"), format="%.1f"),
            "SSIM": st.column_config.NumberColumn(help=ui_text.explain("ssim"), format="%.3f"),
        },
    )
    with right:
        start = {"mean": "dataset mean image", "class_mean": "class mean image"}.get(gallery.init, gallery.init)
        st.caption(f"Start: {start or '–'}. Compare a class-mean start with the class-mean reference.")
