"""Recovery attack: can the forgotten accuracy be brought back? UA before and after each attack, per run."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from opc_core.attacks.base import CalibrationConfig, LeakConfig
from opc_core.methods.base import describe_fields
from opc_core.report import plots
from opc_core.report import text as ui_text
from pages import _shared as ui

ATTACKS = ("fm", "hr", "prototype", "probe", "relearn")

st.title("Recovery attack")
st.markdown(
    "A model that forgot only **shallowly** still encodes the forget set in its features. These attacks try "
    "to read it back out; each bar is the **UA that is left** on D_f (higher = still forgotten). The paper's "
    "attack is **FM**; in the paper, every baseline drops to a low UA after it while OPC stays far higher."
)
st.caption("  \n".join(ui_text.ATTACKS[a] for a in ATTACKS))
runs = ui.run_picker("Unlearn runs", "rec_runs", multi=True, default_id=st.session_state.get("unlearn_run"))
if not runs:
    st.stop()

with st.expander("Attack settings"):
    fields = describe_fields(CalibrationConfig) + describe_fields(LeakConfig)
    fields.append(
        {
            "name": "eps",
            "type": "float",
            "default": 1e-3,
            "min": 0.0,
            "max": 1e3,
            "help": "Ridge strength of FM and HR, relative to the calibration features' scale",
        }
    )
    settings = ui.config_widgets(fields, {}, "rec_set")
missing = [r for r in runs if "recovery" not in r.metrics]
jobs = st.session_state.setdefault("rec_jobs", {})
active = [rid for rid in jobs.values() if ui.store().exists(rid) and ui.store().get(rid).active]
label = f"Run the attacks on {len(missing)} run(s) without results" if missing else "Re-run the attacks on these runs"
if st.button(label, type="primary", disabled=bool(active), key="rec_go"):
    for r in missing or runs:
        jobs[r.id] = ui.manager().submit(
            "attack",
            {"run_id": r.id, "attack": "recovery", "settings": settings},
            title=f"recovery attacks on {r.id}",
            parent=r.id,
        )
    active = list(jobs.values())


@st.fragment(run_every=1)
def watch(ids: list[str]) -> None:
    runs_now = [ui.store().get(i) for i in ids]
    if all(r.final for r in runs_now):
        st.rerun()
    for r in runs_now:
        ui.job_panel(r.id, "rec")


if active:
    watch(active)
for rid in jobs.values():
    if ui.store().exists(rid) and ui.store().get(rid).status in ("failed", "cancelled", "interrupted"):
        ui.show_failure(ui.store().get(rid))

runs = [ui.store().get(r.id) for r in runs]  # fresh metrics
done = [r for r in runs if "recovery" in r.metrics]
if not done:
    st.info(
        "No attack results for these runs yet: press the button above (the attacks take seconds).",
        icon=":material/info:",
    )
    st.stop()
rows = []
for r in done:
    rows.append(
        {
            "method": f"{ui.method_label(r)} ({r.id[-6:]})",
            "ua": r.metrics.get("ua"),
            "recovered_ua": {a: v.get("recovered_ua") for a, v in r.metrics["recovery"].items()},
        }
    )
st.plotly_chart(
    plots.recovery_bars(rows, [a for a in ATTACKS if any(a in x["recovered_ua"] for x in rows)]), key="rec_bars"
)
table = pd.DataFrame(
    [{"run": x["method"], "UA": x["ua"], **{f"after {a}": x["recovered_ua"].get(a) for a in ATTACKS}} for x in rows]
)
st.dataframe(table.round(1), hide_index=True)
ui.explain_caption(["ua", *[f"recovered_ua_{a}" for a in ATTACKS]])
