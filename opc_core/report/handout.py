"""Static pictures of finished runs (the feature-map grid, the recovery bars, the inversion gallery) and the printable
one-page class handout built from a finished comparison.

The pictures are PNGs drawn with matplotlib and embedded as ``data:`` URIs, so the HTML files open offline and print
as they look. The exported report (:func:`opc_core.report.tables.report_html`) embeds the same grid and gallery.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

import numpy as np

from opc_core.report import text as ui_text
from opc_core.report.tables import method_label
from opc_core.runs.run import Run

FORGET, RETAIN = "#D62728", "#9AA5B1"


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def map_grid_png(runs: Sequence[Run], method: str = "umap", cols: int = 5) -> str | None:
    """The runs' stored maps side by side (original model's map first): a PNG data URI, None when none is stored."""
    from opc_core.workflows.explore import stored_map

    maps = [(r, m) for r in runs if (m := stored_map(r, method) or stored_map(r, "pca")) is not None]
    if not maps:
        return None
    plt = _plt()
    panels = [("original", maps[0][1]["original"], None), *((method_label(r), m["unlearned"], r) for r, m in maps)]
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.2 * rows), squeeze=False)
    is_f = np.asarray(maps[0][1]["is_forget"]).astype(bool)
    for ax, (name, pts, run) in zip(axes.flat, panels):
        ax.scatter(pts[~is_f, 0], pts[~is_f, 1], s=2, c=RETAIN, alpha=0.5, linewidths=0)
        ax.scatter(pts[is_f, 0], pts[is_f, 1], s=3, c=FORGET, alpha=0.9, linewidths=0)
        radius = None if run is None else (run.metrics.get("representation") or {}).get("contraction_radius")
        ax.set_title(name + ("" if radius is None else f"\nradius {radius:.2f}"), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    return _png(fig)


def recovery_png(runs: Sequence[Run]) -> str | None:
    """The paper-style recovery bars (UA before and after each attack) of the attacked runs, or None."""
    from opc_core.report.plots import recovery_bars_png

    rows = [
        {
            "method": method_label(r),
            "ua": r.metrics.get("ua"),
            "recovered_ua": {a: v.get("recovered_ua") for a, v in r.metrics["recovery"].items()},
        }
        for r in runs
        if r.metrics.get("recovery")
    ]
    if not rows:
        return None
    buf = io.BytesIO()
    recovery_bars_png(rows, buf)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def gallery_png(store, runs: Sequence[Run], max_images: int = 4) -> str | None:
    """The inversion gallery of the runs' (first) inversion job: true images, then each model's reconstruction."""
    from opc_core.attacks.inversion import Gallery

    attack = next((a for r in runs if (a := (r.metrics.get("inversion") or {}).get("attack_run"))), None)
    if attack is None or not store.exists(attack):
        return None
    path = store.get(attack).artifact_path("inversion")
    if path is None or not path.exists():
        return None
    gallery = Gallery.load(path)
    names = {r.id: method_label(r) for r in runs}
    keys = [k for k in gallery.keys if k == "original" or k in names]
    n = min(max_images, len(gallery.true))
    plt = _plt()
    fig, axes = plt.subplots(n, len(keys) + 1, figsize=(1.15 * (len(keys) + 1), 1.25 * n), squeeze=False)
    for i in range(n):
        images = [("true", gallery.true[i], None)]
        images += [(names.get(k, k), gallery.models[k].images[i], gallery.models[k].psnr[i]) for k in keys]
        for ax, (name, img, psnr) in zip(axes[i], images):
            arr = np.clip(np.asarray(img), 0, 1)
            ax.imshow(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=6)
            if psnr is not None:
                ax.set_xlabel(f"{psnr:.1f} dB", fontsize=6)
    return _png(fig)


def takeaways(runs: Sequence[Run]) -> list[str]:
    """Three take-aways, from the runs' own numbers: the shallow methods under FM, the deepest method, inversion."""
    fm = {method_label(r): ((r.metrics.get("recovery") or {}).get("fm") or {}).get("recovered_ua") for r in runs}
    fm = {k: v for k, v in fm.items() if v is not None}
    if not fm:
        return ["Run the recovery attacks to see which methods forgot deeply."]
    ranked = {k: v for k, v in fm.items() if k != "retrain"} or fm  # retrain is the reference, not a contender
    deep = max(ranked, key=ranked.get)
    shallow = {k: v for k, v in ranked.items() if k != deep}
    ua = [r.metrics.get("ua") for r in runs if method_label(r) in shallow and r.metrics.get("ua") is not None]
    out = []
    if shallow and ua:
        out.append(
            f"Before any attack the methods look alike (UA {min(ua):.0f}–{max(ua):.0f}). After the FM attack, a linear "
            f"map fitted on held-out images, {', '.join(shallow)} fall to UA {min(shallow.values()):.0f}–"
            f"{max(shallow.values()):.0f}: their features still hold the forgotten classes (shallow forgetting)."
        )
    rad = {method_label(r): (r.metrics.get("representation") or {}).get("contraction_radius") for r in runs}
    out.append(
        f"{deep} keeps UA {fm[deep]:.0f} after FM"
        + (f" (retrain, the model that never saw D_f: {fm['retrain']:.0f})" if "retrain" in fm else "")
        + (f"; its forget features are contracted to radius {rad[deep]:.2f} of D_r's" if rad.get(deep) else "")
        + ". The deeper the contraction, the less an attacker can read back (deep forgetting)."
    )
    psnr = {
        method_label(r): ((r.metrics.get("inversion") or {}).get("unlearned") or {}).get("psnr")
        for r in runs
        if r.metrics.get("inversion")
    }
    psnr = {k: v for k, v in psnr.items() if v is not None}
    if psnr:
        hi, lo = max(psnr, key=psnr.get), min(psnr, key=psnr.get)
        orig = next(
            (
                ((r.metrics.get("inversion") or {}).get("original") or {}).get("psnr")
                for r in runs
                if r.metrics.get("inversion")
            ),
            None,
        )
        out.append(
            "Gradient inversion (rebuilding a forget image from its gradient; higher PSNR = more of it rebuilt): "
            + (f"{orig:.1f} dB from the original model, " if orig is not None else "")
            + f"{psnr[lo]:.1f} dB ({lo}) to {psnr[hi]:.1f} dB ({hi}) from the unlearned ones."
        )
    return out[:3]


CSS = (
    "@page{size:A4;margin:10mm}body{font-family:sans-serif;font-size:11px;margin:0 auto;max-width:190mm}"
    "h1{font-size:17px;margin:4px 0}h2{font-size:13px;margin:8px 0 2px}img{max-width:100%}"
    "table{border-collapse:collapse;width:100%;table-layout:fixed}td,th{border:1px solid #ccc;padding:2px 4px;"
    "text-align:right;overflow-wrap:anywhere}td:first-child,th:first-child{text-align:left}.two{display:flex;gap:8px}"
    ".two>div{flex:1}"
)


def handout_html(store, bench_id: str) -> str:
    """The one-page class handout of a finished comparison: take-aways, map grid, recovery bars, inversion gallery."""
    bench = store.get(bench_id)
    ids = list((bench.metrics.get("runs") or {}).values())
    runs = [store.get(i) for i in ids if store.exists(i)]
    runs = [r for r in runs if r.done]
    title = f"Shallow vs deep forgetting — {len(runs)} methods on {bench.params.dataset}"
    parts = [f"<h1>{html.escape(title)}</h1><ol>"]
    parts += [f"<li>{html.escape(t)}</li>" for t in takeaways(runs)] + ["</ol>"]
    grid, bars, gallery = map_grid_png(runs), recovery_png(runs), gallery_png(store, runs)
    if grid:
        parts.append(f"<h2>Feature maps of the forget set (red)</h2><img src='{grid}'>")
        parts.append(f"<p>{html.escape(ui_text.READINGS['maps_grid'])}</p>")
    row = []
    if bars:
        row.append(f"<div><h2>Recovery attacks</h2><img src='{bars}'></div>")
    if gallery:
        row.append(f"<div><h2>Gradient inversion</h2><img src='{gallery}'></div>")
    parts.append(f"<div class='two'>{''.join(row)}</div>")
    parts.append(
        "<p>UA = 100 − accuracy on the forget set (higher = forgotten); UA after FM = UA left after the feature-map "
        "attack. Made with OPC Lab (Jung et al., arXiv 2507.07754).</p>"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        + html.escape(title)
        + f"</title><style>{CSS}</style></head><body>"
        + "".join(parts)
        + "</body></html>"
    )


def report_images(store, runs: Sequence[Run]) -> list[tuple[str, str]]:
    """The exported report's pictures of ``runs``: the feature-map grid and the inversion gallery, where stored."""
    done = [r for r in runs if r.done]
    out = []
    if (grid := map_grid_png(done)) is not None:
        out.append(("Feature maps (forget set in red)", grid))
    if (gallery := gallery_png(store, done)) is not None:
        out.append(("Gradient inversion: true images and reconstructions", gallery))
    return out
