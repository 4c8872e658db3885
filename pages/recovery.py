"""Recovery attack: can the forgotten accuracy be brought back? UA before and after each attack, per run."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from opc_core.attacks.recovery import get_attack, list_attacks, shared_settings
from opc_core.report import plots
from opc_core.report import text as ui_text
from opc_core.report.tables import metric_value
from pages._jobs import job_panel, show_failure
from pages._proofs import calibration_note, diagnostic_table, reference_rows, run_name
from pages._services import manager, store
from pages._widgets import INFO, config_widgets, explain_caption, reading, run_picker

ATTACKS = list_attacks()  # every registered recovery attack, the paper's first

st.title("Recovery attack")
st.markdown(
    "A model that forgot only **shallowly** still encodes the forget set in its features. These attacks try "
    "to read it back out; each bar is the **UA that is left** on D_f (higher = still forgotten), beside the "
    "**original** model (nothing forgotten) and **retrain** (never saw D_f: what is left after an attack when nothing "
    "was remembered). The paper's attack is **FM**. Measured on fashion_mnist_small with cnn_small over three class "
    "triples (docs/results.md): **OPC-features** (the penultimate features contracted, λ = 1) keeps UA 67 ± 3 after "
    "FM; **OPC (paper: logits)** keeps only 13 ± 7, because its loss reaches only the head's row space and the forget "
    "classes survive in the null space (the diagnostic below shows it per run); **retrain** keeps 24 ± 7 (FM maps a "
    "class it never saw onto a similar one); **relearning** on five leaked images per class brings OPC-features down "
    "to 40 ± 23 and the shallow methods to 15-20."
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
        icon=INFO,
    )
    st.stop()
rows = reference_rows(done)
for r in sorted(done, key=lambda r: r.params.method != "retrain"):
    rows.append(
        {
            "method": run_name(r),
            "ua": r.metrics.get("ua"),
            "recovered_ua": {a: v.get("recovered_ua") for a, v in r.metrics["recovery"].items()},
        }
    )
if not any(x["method"].startswith("retrain") for x in rows):
    st.caption("No retrain run of this split with attack results: run one (or a benchmark) for the reference bar.")
st.plotly_chart(
    plots.recovery_bars(rows, [a for a in ATTACKS if any(a in x["recovered_ua"] for x in rows)]), key="rec_bars"
)
reading("recovery", [(run_name(r), "recovered_ua_fm", metric_value(r, "recovered_ua_fm")) for r in done])
notes = {calibration_note(r): [run_name(x) for x in done if calibration_note(x) == calibration_note(r)] for r in done}
where = "; ".join(k if len(notes) == 1 else f"{', '.join(v)}: {k}" for k, v in notes.items())
st.caption(
    f"Every FM/HR number here: calibration on {where}. HR re-fits a linear head on D_cal's labels; its logit-target "
    "option (≡ FM) predicts exactly what FM predicts."
)
table = pd.DataFrame(
    [
        {
            "model": x["method"],
            "UA": x["ua"],
            **{f"after {get_attack(a).label}": x["recovered_ua"].get(a) for a in ATTACKS},
        }
        for x in rows
    ]
)
st.dataframe(table.round(1), hide_index=True)
explain_caption(["ua", *[f"recovered_ua_{a}" for a in ATTACKS]])

st.subheader("Where does the forgotten information live?")
d0 = done[0].metrics.get("diagnostic") or {}
st.markdown(
    f"The head reads the features only through its **row space** ({d0.get('head_rank', 'K')} of the "
    f"{d0.get('feature_dim', 'D')} feature dimensions here). FM fed only the row-space part, or only the "
    "**null-space** part, of the unlearned features shows where the forget classes survive; the probe inside D_f "
    "asks whether they can still be told apart at all."
)
st.dataframe(diagnostic_table(done), hide_index=True)
