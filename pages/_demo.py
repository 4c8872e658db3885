"""The home page's lower half: the shipped demo's notice, the one-click comparisons (fast and full) and the class
handout of the newest finished comparison."""

from __future__ import annotations

import time

import streamlit as st

from opc_core.workflows.demo import is_demo
from opc_core.workflows.presets import PRESETS, describe, preset_params
from pages._services import COMPARE_PAGE, manager, store


def newest_comparison():
    """The newest finished comparison (bench run), the shipped demo included; None when there is none."""
    done = store().list(kind="bench", status="done", limit=1)
    return done[0] if done else None


def demo_notice() -> None:
    """Say that the pages show the shipped demo, while they do (no live comparison has finished yet)."""
    bench = newest_comparison()
    if bench is None or not is_demo(bench):
        return
    when = time.strftime("%Y-%m-%d", time.localtime(bench.finished or bench.created))
    n = len(bench.metrics.get("runs") or bench.params.methods)
    st.success(
        f"**Every page already shows a shipped demo**: a finished shallow-vs-deep comparison of "
        f"{n} methods on the embedded Fashion-MNIST (computed on {when} by "
        "`scripts/make_demo.py` with this project's own code). Its runs are marked *demo*; the buttons below "
        "run the comparison again, live, on this machine.",
        icon="☑",
    )


def preset_buttons() -> None:
    """The fast and full one-click comparisons; a click queues the benchmark and opens Compare."""
    st.subheader("One click: shallow vs deep")
    cols = st.columns(len(PRESETS))
    for col, name in zip(cols, PRESETS):
        with col:
            st.markdown(describe(name))
            kind = "primary" if name == "fast" else "secondary"
            if st.button(f"Run the {name} comparison", type=kind, key=f"home_preset_{name}"):
                st.session_state["bench_run"] = manager().submit(
                    "bench", preset_params(name), title=f"shallow vs deep · {name} preset"
                )
                st.switch_page(COMPARE_PAGE)
    active = store().list(status=("queued", "running"))
    if active:
        st.caption(f"{len(active)} job(s) queued or running — see the Compare page.")
    bench = newest_comparison()
    if bench is not None:
        from opc_core.report.handout import handout_html

        st.download_button(
            "Class handout (one printable page) of the newest comparison",
            lambda: handout_html(store(), bench.id),
            file_name="opc_lab_handout.html",
            mime="text/html",
            key="home_handout",
            on_click="ignore",
        )
