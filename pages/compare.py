"""Compare: the unlearn runs of one forget set side by side (the newest comparison's by default), their charts with a
guided reading, export (HTML report with maps and inversion gallery, CSV, JSON, class handout) and deletion."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from opc_core.report import tables as report
from opc_core.report import text as ui_text
from pages._jobs import job_panel
from pages._services import store
from pages._widgets import INFO, chart, empty_state

st.title("Compare")


def signature(runs) -> tuple:
    """What changes when a method lands: a new run, a status, its attack results."""
    return tuple((r.id, r.status, "recovery" in r.metrics, "inversion" in r.metrics) for r in runs)


@st.fragment(run_every=1)
def watch_jobs(seen: tuple) -> None:
    active = store().list(status=("queued", "running"))
    if not active or signature(store().list(kind="unlearn")) != seen:
        st.rerun()  # a job ended or a method of a comparison landed: refresh the whole page
    st.subheader("Jobs in progress")
    for run in active:
        if run.parent is None or run.kind != "unlearn":  # a benchmark's own bar covers its methods
            job_panel(run.id, "cmp")


def newest_forget(runs) -> str | None:
    """The forget set of the newest comparison's runs (else of the newest run)."""
    bench = next((r for r in runs if r.parent and store().exists(r.parent)), None)
    return report.run_row(bench or runs[0])["forget"] if runs else None


all_runs = store().list(kind="unlearn")
if store().list(status=("queued", "running"), limit=1):
    watch_jobs(signature(all_runs))
if not all_runs:
    empty_state(
        "No unlearning runs to compare yet. Launch one on the Unlearn page, or the one-click "
        "shallow-vs-deep comparison on the home page."
    )
    st.stop()
show_all = st.toggle("Show cancelled and failed runs", key="cmp_all")
runs = [r for r in all_runs if show_all or r.status in ("done", "running", "queued")]
df = pd.DataFrame([report.run_row(r) for r in runs]) if runs else pd.DataFrame(columns=["forget", "status", "run"])
forgets = sorted(df["forget"].dropna().unique())
default = newest_forget(runs)
cols = st.columns(4)
chosen_forget = cols[0].multiselect(
    "Forget set", forgets, default=[default] if default in forgets else [], key="cmp_forget"
)
filters = (
    {
        c: cols[i + 1].multiselect(c.capitalize(), sorted(df[c].dropna().unique()), key=f"cmp_{c}")
        for i, c in enumerate(("dataset", "model", "method"))
    }
    if len(df)
    else {}
)
filters["forget"] = chosen_forget
for c, picked in filters.items():
    if picked:
        df = df[df[c].isin(picked)]
df = df.dropna(axis=1, how="all").reset_index(drop=True)
if df.empty:
    st.info("No run matches these filters.", icon=INFO)
    st.stop()
st.caption(
    "One row per run, named method · dataset · forget set · time. Select rows (the boxes on the left) to compare a "
    "subset; with none selected, every finished run shown is compared. "
    + " ".join(f"{ui_text.label(k)}: better {ui_text.METRICS[k]['good']}." for k in ("ua", "ra", "ta", "mia"))
)
number_cols = {c: st.column_config.NumberColumn(format="%.2f") for c in df.select_dtypes("number").columns}
event = st.dataframe(
    df, hide_index=True, on_select="rerun", selection_mode="multi-row", key="cmp_table", column_config=number_cols
)
picked = list(event.selection.rows) if event and event.selection else []
sel = df.iloc[picked] if picked else df[df["status"] == "done"]
if sel.empty:
    st.info("None of these runs has finished; select rows to inspect, export or delete them.", icon=INFO)
    st.stop()

chosen = {r.id: r for r in runs if r.id in set(sel["run"])}
rows = report.chart_rows(chosen.values())
figures = report.figures(rows)
labels = {r.id: r.params.name for r in chosen.values()}
for i, fig in enumerate(figures):
    key = "metrics" if i == 0 else "recovery"
    metric = "ua" if key == "metrics" else "recovered_ua_fm"
    values = [(labels[r.id], metric, report.metric_value(r, metric)) for r in chosen.values() if r.done]
    chart(fig, f"cmp_fig_{i}", key, values)
if rows and not any(r["recovered_ua"] for r in rows):
    st.caption("No recovery-attack results for these runs yet: run them on the Recovery attack page.")
st.subheader("Side by side")
side = report.rounded(sel).set_index("name").T
side = side.map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
wide_index = {"_index": st.column_config.TextColumn(width="medium")}
st.dataframe(side, key="cmp_side", height=35 * (len(side) + 1) + 3, column_config=wide_index)

st.subheader("Export")
title = report.default_title(len(sel))


def html_report() -> str:
    from opc_core.report.handout import report_images

    return report.report_html(title, sel, figures, images=report_images(store(), list(chosen.values())))


c1, c2, c3 = st.columns(3)
c1.download_button(
    "HTML report", html_report, file_name="opc_lab_report.html", mime="text/html", key="cmp_html", on_click="ignore"
)
csv = report.rounded(sel).to_csv(index=False)
c2.download_button("CSV", csv, file_name="opc_lab_runs.csv", mime="text/csv", key="cmp_csv", on_click="ignore")
c3.download_button(
    "JSON",
    json.dumps(report.records(chosen.values()), indent=2, default=str),
    file_name="opc_lab_runs.json",
    mime="application/json",
    key="cmp_json",
    on_click="ignore",
)

with st.expander(f"Delete the {len(sel)} run(s) compared here"):
    st.caption("Removes the runs, their step records and their files. Running runs must be cancelled first.")
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
