"""OPC Lab: the Streamlit entry point. Navigation over the workflow's pages, and the home page.

Run with ``bash dev.sh dashboard`` (or ``streamlit run app.py --server.headless true --server.address 127.0.0.1``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages._address import refuse_remote_sessions

FIGURE = Path(__file__).resolve().parent / "assets" / "img" / "shallow_vs_deep.png"
# Page icons are emoji that the common DejaVu font draws, not ``:material/...:`` names: those are fetched as images
# from a font server (offline: none).
# The same paths as pages/_services.py's constants; spelled out so the home page can draw its text before anything
# imports opc_core (and with it torch, seconds on a busy CPU).
WORKFLOW = [
    ("pages/model.py", "Model", "⚙", "pick a pretrained model (or train / upload one)"),
    ("pages/unlearn.py", "Unlearn", "✂", "choose classes to forget and a method; watch the losses live"),
    ("pages/feature_space.py", "Feature space", "✳", "UMAP / PCA of the features: does the forget set collapse?"),
    ("pages/recovery.py", "Recovery attack", "↩", "can a linear map bring the forgotten accuracy back?"),
    ("pages/inversion.py", "Gradient inversion", "⚗", "can the forgotten images be rebuilt from gradients?"),
    ("pages/compare.py", "Compare", "⚖", "all runs side by side; export a report or a class handout"),
    ("pages/sweep.py", "Sweep", "♻", "a grid of runs over settings and seeds: mean ± std and sensitivity plots"),
    ("pages/glossary.py", "Glossary", "✒", "every term and symbol in plain words"),
]


@st.cache_resource(show_spinner=False)
def device_name() -> str:
    from opc_core.env.device import describe_device

    return describe_device()


def home() -> None:
    st.title("OPC Lab: shallow vs deep forgetting")
    left, right = st.columns([2, 3])
    left.markdown(
        "**Machine unlearning** removes what a model learned from some data (here: whole classes) without "
        "retraining from scratch. Most methods forget **shallowly**: the outputs on the forgotten data change, "
        "but the features inside still separate and encode it, so a linear map fitted on other data restores "
        "the forgotten accuracy, and gradient inversion rebuilds the forgotten images.\n\n"
        "**Deep forgetting** means the model maps every forgotten sample to *one point*, so nothing is left to "
        "recover. **OPC** (One-Point-Contraction, Jung et al., arXiv 2507.07754) trains for exactly that: "
        "cross-entropy on the retained data plus the norm of the forget set's representation, pulled to 0. The "
        "paper applies the norm to the logits (**OPC (paper: logits)**); on this project's CNN that forgets at the "
        "output only, and the same loss on the penultimate features (**OPC-features**) is the variant that forgets "
        "deeply (docs/results.md)."
    )
    if FIGURE.exists():
        right.image(
            str(FIGURE),
            caption="Real features of the shipped small CNN on the embedded Fashion-MNIST subset (classes 0, 1, 2 "
            "forgotten, seed 0, each method's preset) in one shared PCA map: after FT the forgotten classes keep their "
            "clusters; after OPC on the logits they shrink into a blob that FM still reads (see 'after FM'); after "
            "OPC-features they collapse to one point (drawn by scripts/make_home_figure.py).",
        )
    device = left.empty()
    device.caption("Computing on: …")
    from pages._demo import demo_notice, preset_buttons  # imports opc_core (torch): after the text above is drawn

    demo_notice()
    st.subheader("Workflow")
    for row in range(0, len(WORKFLOW), 4):  # four to a row: the labels stay whole
        for col, (page, title, icon, what) in zip(st.columns(4), WORKFLOW[row : row + 4]):
            col.page_link(page, label=title, icon=icon)
            col.caption(what)
    preset_buttons()
    device.caption(f"Computing on: **{device_name()}**")


pages = [st.Page(home, title="Home", icon="☀", default=True)]
pages += [st.Page(path, title=title, icon=icon) for path, title, icon, _ in WORKFLOW]
st.set_page_config(page_title="OPC Lab", page_icon="✂", layout="wide")
refuse_remote_sessions()  # a browser on another machine is refused if the server listens everywhere
st.navigation(pages).run()
