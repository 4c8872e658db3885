"""Sweep: define a small grid (methods, one or two settings' values, forget sets, seeds), launch it as one job, watch
its cells, then read mean ± std over the seeds, the sensitivity plots, and export CSV / JSON / HTML."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from opc_core.attacks import list_attacks
from opc_core.methods import list_methods
from opc_core.report import sweep as report
from opc_core.report.text import READING_MARK
from opc_core.workflows.sweep import SweepParams, expand, parse_values, progress
from pages._jobs import job_panel
from pages._services import current_model, manager, store
from pages._widgets import INFO, empty_state

st.title("Sweep")
st.caption(
    "A grid of unlearning runs: every method (or variant, e.g. `opc:layer=features`) × every value of the settings "
    "you sweep × forget sets × seeds. Each cell is an ordinary unlearn run (it appears on the Compare page) followed "
    "by the recovery attacks; the table gives mean ± std over the seeds. Keep it small on a CPU: each cell takes "
    "about as long as one run on the Unlearn page."
)
choice = current_model()


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.replace(" ", "").split(",") if v]


def build_params(form: dict) -> SweepParams:
    """The sweep's parameters from the form's values (ValueError naming what is wrong)."""
    grid = {k.strip(): parse_values(v) for k, v in form["grid"] if k.strip()}
    return SweepParams(
        dataset=choice["dataset"],
        model=choice["model"],
        checkpoint=str(choice["checkpoint"]) if choice.get("checkpoint") else None,
        methods=form["methods"],
        grid=grid,
        forget_sets=[_ints(s) for s in form["forget"].split(";") if s.strip()] or None,
        seeds=_ints(form["seeds"]),
        attacks=form["attacks"],
        equal_budget=int(form["budget"]),
        engine=form["engine"],
        mia=False,
    )


with st.form("sweep_form"):
    st.markdown(f"Model: **{choice['model']}** on **{choice['dataset']}** (change it on the Model page).")
    left, right = st.columns(2)
    methods = list_methods()
    both = [m for m in ("opc", "opc_features") if m in methods] or ["opc", "opc:layer=features"]
    form = {"methods": left.multiselect("Methods", [*methods, "opc:layer=features"], both, key="sw_methods")}
    form["grid"] = [
        (
            left.text_input(f"Setting {i + 1} (KEY, or METHOD:KEY for one method)", key, key=f"sw_key{i}"),
            right.text_input(f"Its values {i + 1}", values, key=f"sw_values{i}"),
        )
        for i, (key, values) in enumerate((("lam", "0.3, 1"), ("", "")))
    ]
    form["forget"] = left.text_input("Forget classes (several sets: separate with ';')", "0,1,2", key="sw_forget")
    form["seeds"] = right.text_input("Seeds", "0, 1", key="sw_seeds")
    form["attacks"] = left.multiselect("Recovery attacks after each cell", list_attacks(), ["fm"], key="sw_attacks")
    form["budget"] = right.number_input(
        "Equal budget: steps for every method (0 = their own epochs)", 0, 10**6, 0, key="sw_budget"
    )
    engines = ["local"] + (["ray"] if importlib.util.find_spec("ray") else [])
    form["engine"] = right.radio(
        "Engine", engines, horizontal=True, help="ray: cells in parallel, a CPU each", key="sw_engine"
    )
    submitted = st.form_submit_button("Launch sweep", type="primary", key="sw_launch")
if submitted:
    try:
        params = build_params(form)
        n = len(expand(params))
    except (KeyError, ValueError) as exc:
        st.error(f"Cannot launch this sweep: {exc.args[0] if exc.args else exc}")
    else:
        title = f"sweep of {n} cells on {params.dataset}"
        st.session_state["sweep_run"] = manager().submit("sweep", params, title=title)
        st.toast(f"Queued a sweep of {n} cells")

sweeps = store().list(kind="sweep")
if not sweeps:
    empty_state("No sweep yet: define a small grid above and launch it.")
    st.stop()
ids = [r.id for r in sweeps]
default = ids.index(st.session_state["sweep_run"]) if st.session_state.get("sweep_run") in ids else 0
labels = {r.id: f"{r.title} · {r.status} · {r.id}" for r in sweeps}
run = store().get(st.selectbox("Sweep", ids, index=default, format_func=labels.get, key="sw_pick"))


@st.fragment(run_every=1)
def watch(run_id: str) -> None:
    """The sweep's job panel and its cells done / running / queued with the ETA, every second; one page rerun at
    the end."""
    if store().get(run_id).final:
        st.rerun()
    job_panel(run_id, "sweep")
    st.caption(progress(store(), run_id).text())


if run.active:
    watch(run.id)
else:
    job_panel(run.id, "sweep")
summary = report.summarise(store(), run.id)
st.caption(summary["progress"])
table = [r for r in summary["table"] if r["n"]]
if not table:
    st.info("No cell has finished yet: the table and plots appear as cells finish.", icon=INFO)
    st.stop()
st.subheader("Mean ± std over seeds")
st.markdown(report.markdown_table(table))
for x in summary["swept"]:
    st.plotly_chart(report.sensitivity_figure(table, x, summary["keys"]), key=f"sw_fig_{x}")
    st.caption(
        f"**{READING_MARK}** one panel per metric against {x}, one line per method (bars: std over the seeds; a dashed "
        "line: a method the setting does not apply to). UA and TA say whether it forgot and what it kept; FM UA is "
        "the UA left after the feature-map attack: higher means deeper. The probe inside D_f falls as the forget "
        "classes merge."
    )
if not summary["swept"]:
    st.caption("Sweep a numeric setting over two or more values to get its sensitivity plot.")
if not any(k.startswith("diag.") for r in table for k in r):
    st.caption("These runs carry no depth diagnostic, so its columns are left out.")

st.subheader("Export")
with tempfile.TemporaryDirectory() as tmp:
    files = report.write_sweep(store(), run.id, Path(tmp))
    cols = st.columns(4)
    for col, (key, mime) in zip(cols, (("csv", "text/csv"), ("cells", "text/csv"), ("json", "application/json"))):
        col.download_button(files[key].name, files[key].read_bytes(), files[key].name, mime, key=f"sw_dl_{key}")
    cols[3].download_button("sweep.html", files["html"].read_bytes(), "sweep.html", "text/html", key="sw_dl_html")
with st.expander("Every cell"):
    st.dataframe(pd.DataFrame(summary["cells"]).round(2), hide_index=True)
