"""Compare: every unlearn run in one table, side-by-side metrics and charts, delete runs, export a report."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from opc_core.report import tables as report
from opc_core.report import text as ui_text
from pages._jobs import job_panel
from pages._services import store
from pages._widgets import empty_state

st.title("Compare")


def signature(runs) -> tuple:
    return tuple((r.id, r.status) for r in runs)


@st.fragment(run_every=1)
def watch_jobs(seen: tuple) -> None:
    active = store().list(status=("queued", "running"))
    if not active or signature(store().list(kind="unlearn")) != seen:
        st.rerun()  # a job ended or a benchmark added a run: refresh the whole page
    st.subheader("Jobs in progress")
    for run in active:
        if run.parent is None or run.kind != "unlearn":  # a benchmark's own progress covers its child runs
            job_panel(run.id, "cmp")


runs = store().list(kind="unlearn")
if store().list(status=("queued", "running"), limit=1):
    watch_jobs(signature(runs))
if not runs:
    if store().list(status=("queued", "running"), limit=1):
        st.info("The runs appear here as the jobs above produce them.", icon=":material/hourglass_top:")
        st.stop()
    empty_state(
        "No unlearning runs to compare yet. Launch one on the Unlearn page, or the one-click "
        "shallow-vs-deep preset on the home page."
    )
    st.stop()
df = pd.DataFrame([report.run_row(r) for r in runs])
cols = st.columns(3)
filters = {
    c: cols[i].multiselect(c.capitalize(), sorted(df[c].dropna().unique()), key=f"cmp_{c}")
    for i, c in enumerate(("dataset", "model", "method"))
}
for c, chosen in filters.items():
    if chosen:
        df = df[df[c].isin(chosen)]
df = df.dropna(axis=1, how="all").reset_index(drop=True)
st.caption(
    "Select rows (the boxes on the left) to compare a subset; with none selected, every finished run shown "
    "is compared. "
    + " ".join(f"{ui_text.label(k)}: better {ui_text.METRICS[k]['good']}." for k in ("ua", "ra", "ta", "mia"))
)
event = st.dataframe(df.round(2), hide_index=True, on_select="rerun", selection_mode="multi-row", key="cmp_table")
picked = list(event.selection.rows) if event and event.selection else []
sel = df.iloc[picked] if picked else df[df["status"] == "done"]
if sel.empty:
    st.info("None of these runs has finished; select rows to inspect, export or delete them.", icon=":material/info:")
    st.stop()

chosen = {r.id: r for r in runs if r.id in set(sel["run"])}
rows = report.chart_rows(chosen.values())
figures = report.figures(rows)
for i, fig in enumerate(figures):
    st.plotly_chart(fig, key=f"cmp_fig_{i}")
if rows and not any(r["recovered_ua"] for r in rows):
    st.caption("No recovery-attack results for these runs yet: run them on the Recovery attack page.")
st.subheader("Side by side")
side = sel.round(2).set_index("run").T.astype(str)
wide_index = {"_index": st.column_config.TextColumn(width="medium")}
st.dataframe(side, key="cmp_side", height=35 * (len(side) + 1) + 3, column_config=wide_index)

st.subheader("Export")
title = report.default_title(len(sel))
records = report.records(chosen.values())
c1, c2, c3 = st.columns(3)
c1.download_button(
    "HTML report",
    lambda: report.report_html(title, sel, figures),
    file_name="opc_lab_report.html",
    mime="text/html",
    key="cmp_html",
    on_click="ignore",
)
c2.download_button(
    "CSV", sel.to_csv(index=False), file_name="opc_lab_runs.csv", mime="text/csv", key="cmp_csv", on_click="ignore"
)
c3.download_button(
    "JSON",
    json.dumps(records, indent=2, default=str),
    file_name="opc_lab_runs.json",
    mime="application/json",
    key="cmp_json",
    on_click="ignore",
)

with st.expander(f"Delete the {len(sel)} run(s) compared here"):
    st.caption(
        "Removes the runs, their step records and their files (checkpoints, snapshots). Running runs must be "
        "cancelled first."
    )
    sure = st.checkbox(f"Yes, delete {len(sel)} run(s)", key="cmp_sure")
    if st.button("Delete", type="primary", disabled=not sure, key="cmp_delete"):
        errors = []
        for rid in sel["run"]:
            try:
                store().delete(rid)
            except (ValueError, KeyError) as exc:
                errors.append(str(exc))
        st.session_state.pop("cmp_sure", None)
        for e in errors:
            st.error(e)
        if not errors:
            st.rerun()
