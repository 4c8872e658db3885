"""The benchmark's outputs: a Markdown table, and the JSON, Markdown and chart files of ``bench --out``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def markdown_table(result: dict[str, Any]) -> str:
    """The benchmark as a Markdown table (percentages; recovered UA per attack; inversion PSNR/SSIM)."""
    attacks = list(result["rows"][0]["recovered_ua"]) if result["rows"] else []
    head = ["method", "UA", "RA", "TA", "MIA", *[f"UA after {a}" for a in attacks], "PSNR", "SSIM", "feat. radius", "s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda v: "–" if v is None else f"{v:.1f}"  # noqa: E731
    for r in result["rows"]:
        inv = r.get("inversion") or {}
        rep = r.get("representation") or {}
        cells = [
            r["method"],
            fmt(r["ua"]),
            fmt(r["ra"]),
            fmt(r["ta"]),
            fmt(r["mia"]),
            *[fmt(r["recovered_ua"].get(a)) for a in attacks],
            fmt(inv.get("psnr")),
            "–" if inv.get("ssim") is None else f"{inv['ssim']:.3f}",
            "–" if rep.get("contraction_radius") is None else f"{rep['contraction_radius']:.3f}",
            fmt(r["seconds"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(result: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write bench.json, bench.md, the recovery chart as HTML (plotly, self-contained) and PNG (matplotlib)."""
    from opc_core.report.plots import recovery_bars, recovery_bars_png

    out.mkdir(parents=True, exist_ok=True)
    files = {
        "json": out / "bench.json",
        "md": out / "bench.md",
        "html": out / "recovery_bars.html",
        "png": out / "recovery_bars.png",
    }
    files["json"].write_text(json.dumps(result, indent=2, default=str))
    files["md"].write_text(markdown_table(result) + "\n")
    recovery_bars(result["rows"]).write_html(files["html"], include_plotlyjs=True, full_html=True)
    recovery_bars_png(result["rows"], files["png"])
    return files
