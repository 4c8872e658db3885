"""Recovery attack: can the forgotten accuracy be brought back? UA before and after each attack, per run."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from opc_core.attacks.recovery import get_attack, list_attacks, shared_settings
from opc_core.report import plots
from opc_core.report import text as ui_text
from opc_core.report.tables import method_label
from pages._jobs import job_panel, show_failure
from pages._services import manager, store
from pages._widgets import config_widgets, explain_caption, run_picker

ATTACKS = list_attacks()  # every registered recovery attack, the paper's first

st.title("Recovery attack")
st.markdown(
    "A model that forgot only **shallowly** still encodes the forget set in its features. These attacks try "
    "to read it back out; each bar is the **UA that is left** on D_f (higher = still forgotten). The paper's "
    "attack is **FM**; in the paper, every baseline drops to a low UA after it while OPC stays far higher."
)
st.caption("  \n".join(ui_text.attack_caption(a) for a in ATTACKS))
runs = run_picker("Unlearn runs", "rec_runs", multi=True, default_id=st.session_state.get("unlearn_run"))
if not runs:
    st.stop()

with st.expander("Attack settings"):  # the settings several attacks share; each attack reads those it has
    settings = config_widgets(shared_settings(), {}, "rec_set")
missing = [r for r in runs if "recovery" not in r.metrics]
jobs = st.session_state.setdefault("rec_jobs", {})
active = [rid for rid in jobs.values() if store().exists(rid) and store().get(rid).active]
label = f"Run the attacks on {len(missing)} run(s) without results" if missing else "Re-run the attacks on these runs"
if st.button(label, type="primary", disabled=bool(active), key="rec_go"):
    for r in missing or runs:
        jobs[r.id] = manager().submit(
            "attack",
            {"run_ids": [r.id], "attack": "recovery", "settings": settings},
            title=f"recovery attacks on {r.id}",
            parent=r.id,
        )
    active = list(jobs.values())


@st.fragment(run_every=1)
def watch(ids: list[str]) -> None:
    runs_now = [store().get(i) for i in ids]
    if all(r.final for r in runs_now):
        st.rerun()
    for r in runs_now:
        job_panel(r.id, "rec")


if active:
    watch(active)
for rid in jobs.values():
    if store().exists(rid) and store().get(rid).status in ("failed", "cancelled", "interrupted"):
        show_failure(store().get(rid))

runs = [store().get(r.id) for r in runs]  # fresh metrics
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
            "method": f"{method_label(r)} ({r.id[-6:]})",
            "ua": r.metrics.get("ua"),
            "recovered_ua": {a: v.get("recovered_ua") for a, v in r.metrics["recovery"].items()},
        }
    )
st.plotly_chart(
    plots.recovery_bars(rows, [a for a in ATTACKS if any(a in x["recovered_ua"] for x in rows)]), key="rec_bars"
)
table = pd.DataFrame(
    [
        {
            "run": x["method"],
            "UA": x["ua"],
            **{f"after {get_attack(a).label}": x["recovered_ua"].get(a) for a in ATTACKS},
        }
        for x in rows
    ]
)
st.dataframe(table.round(1), hide_index=True)
explain_caption(["ua", *[f"recovered_ua_{a}" for a in ATTACKS]])
