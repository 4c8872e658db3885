"""The benchmark's outputs: a Markdown table, the JSON, Markdown and chart files of ``bench --out``, and
docs/results.md (several splits, mean ± std; ``scripts/make_results.py``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

ATTACK_COLS = ("fm", "hr", "prototype", "probe", "relearn")
DIAG_COLS = {
    "fm_null_ua": "FM, null space",
    "fm_row_ua": "FM, row space",
    "probe_inside": "probe inside D_f",
    "separation_kept": "separation kept",
}
"""The diagnostic's headline keys (opc_core.attacks.recovery.diagnostic) and their column names."""
PAPER = (
    "The paper's figure (CIFAR-10 / SVHN, ResNet-18, 3 of 10 classes), UA after FM: OPC 66.7 / 48.7, retrain "
    "29.6 / 11.6, every other baseline between about 0 and 13.4 (before the attack all near UA 100 except BT, 91.5). "
    "66.7 is exactly 2/3, FM's ceiling when three balanced classes collapse to one point that maps to one class."
)
REFERENCES = {"grey": "flat grey", "mean": "dataset mean image", "class_mean": "class mean image"}


def _fmt(v: Any, digits: int = 1) -> str:
    return "–" if v is None or not math.isfinite(float(v)) else f"{float(v):.{digits}f}"


def markdown_table(result: dict[str, Any]) -> str:
    """One benchmark as a Markdown table: UA/RA/TA/MIA, recovered UA per attack, the diagnostic, inversion, radius."""
    from opc_core.methods.opc import method_label

    attacks = list(result["rows"][0]["recovered_ua"]) if result["rows"] else []
    head = ["method", "UA", "RA", "TA", "MIA", *[f"UA after {a}" for a in attacks], *DIAG_COLS.values()]
    head += ["PSNR", "SSIM", "radius (scale-dependent)", "s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["rows"]:
        inv, rep, diag = r.get("inversion") or {}, r.get("representation") or {}, r.get("diagnostic") or {}
        cells = [
            method_label(r["method"]),
            *[_fmt(r.get(k)) for k in ("ua", "ra", "ta", "mia")],
            *[_fmt(r["recovered_ua"].get(a)) for a in attacks],
            *[_fmt(diag.get(k), 2 if k == "separation_kept" else 1) for k in DIAG_COLS],
            _fmt(inv.get("psnr")),
            _fmt(inv.get("ssim"), 3),
            _fmt(rep.get("contraction_radius"), 3),
            _fmt(r.get("seconds")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(result: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write bench.json, bench.md, the recovery chart as HTML (plotly, self-contained) and PNG (matplotlib)."""
    from opc_core.report.plots import recovery_bars, recovery_bars_png, with_references

    out.mkdir(parents=True, exist_ok=True)
    files = {
        "json": out / "bench.json",
        "md": out / "bench.md",
        "html": out / "recovery_bars.html",
        "png": out / "recovery_bars.png",
    }
    files["json"].write_text(json.dumps(result, indent=2, default=str))
    files["md"].write_text(markdown_table(result) + "\n")
    rows = with_references(result)
    recovery_bars(rows).write_html(files["html"], include_plotlyjs=True, full_html=True)
    recovery_bars_png(rows, files["png"])
    return files


# --- docs/results.md: several splits, mean ± std -------------------------------------------------------------------
def stat(values: list) -> tuple[float, float, int]:
    """Mean, population std and count of the finite values (NaN, NaN, 0 when there are none)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return math.nan, math.nan, 0
    mean = sum(vals) / len(vals)
    return mean, (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5, len(vals)


def _pm(values: list, digits: int = 1) -> str:
    """Mean ± std of the measured values; "(n of N)" when only n of the N splits measured it."""
    mean, std, n = stat(values)
    if n == 0:
        return "–"
    text = f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"
    return text if n == len(values) else f"{text} ({n} of {len(values)})"


def method_rows(results: list[dict], method: str) -> list[dict]:
    """``method``'s row of every split (``original`` builds the original model's row); ``{}`` where it is missing."""
    if method == "original":
        return [
            {
                **(r.get("original") or {}),
                "inversion": r.get("inversion_original"),
                "diagnostic": {
                    "probe_inside": ((r["rows"] or [{}])[0].get("diagnostic") or {}).get("probe_inside_original")
                },
            }
            for r in results
        ]
    return [next((row for row in r["rows"] if row["method"] == method), {}) for r in results]


def column(rows: list[dict], key: str, originals: list[dict] | None = None) -> list:
    """One value per split: a top-level key, ``dta`` (TA − the original's), ``after:<attack>``, ``diag:<key>`` or
    ``inv:<psnr|ssim>``."""
    if key == "dta":
        return [
            r["ta"] - o["ta"] if r.get("ta") is not None and o.get("ta") is not None else None
            for r, o in zip(rows, originals or [{}] * len(rows), strict=True)
        ]
    kind, _, name = key.partition(":")
    if kind == "after":
        return [(r.get("recovered_ua") or {}).get(name) for r in rows]
    if kind == "diag":
        return [(r.get("diagnostic") or {}).get(name) for r in rows]
    if kind == "inv":
        return [(r.get("inversion") or {}).get(name) for r in rows]
    return [r.get(key) for r in rows]


def results_section(results: list[dict]) -> str:
    """One dataset and model: the mean ± std table over its splits and the inversion references."""
    from opc_core.methods.opc import method_label

    first = results[0]
    splits = ", ".join(f"{{{','.join(map(str, r['forget_classes']))}}} seed {r['seed']}" for r in results)
    keys = ["ua", "ta", "dta", *[f"after:{a}" for a in ATTACK_COLS], *[f"diag:{k}" for k in DIAG_COLS]]
    keys += ["inv:psnr", "inv:ssim"]
    head = ["method", "UA", "TA", "ΔTA", *[f"UA after {a}" for a in ATTACK_COLS], *DIAG_COLS.values(), "PSNR", "SSIM"]
    lines = [
        f"## {first['dataset']} · {first['model']}",
        "",
        f"{len(results)} class triple(s): {splits}; mean ± std over them. Every method with its preset; the "
        "calibration set D_cal is the fixed half of the test split (forget classes included); HR re-fits a head on "
        "D_cal's labels (on logit targets it equals FM, not shown).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    originals = method_rows(results, "original")
    methods = ["original", *dict.fromkeys(row["method"] for r in results for row in r["rows"])]
    for m in methods:
        rows = method_rows(results, m)
        digits = {"diag:separation_kept": 2, "inv:ssim": 2}
        cells = [_pm(column(rows, k, originals), digits.get(k, 1)) for k in keys]
        lines.append(f"| {method_label(m)} | " + " | ".join(cells) + " |")
    partial = [r for r in results if r.get("partial")]
    if partial:
        lines += [
            "",
            "Incomplete: "
            + "; ".join(
                f"{{{','.join(map(str, r['forget_classes']))}}} seed {r['seed']}: {r['partial']}" for r in partial
            )
            + ".",
        ]
    refs = [r.get("inversion_references") or {} for r in results]
    if any(refs):
        cfg = first.get("inversion_config") or {}
        flags = [(r.get("inversion_config") or {}).get("inconclusive") for r in results]
        parts = [
            f"{label} {_pm([x.get(k, {}).get('psnr') for x in refs])} dB / "
            f"{_pm([x.get(k, {}).get('ssim') for x in refs], 2)}"
            for k, label in REFERENCES.items()
        ]
        lines += [
            "",
            f"Gradient inversion of the same {first.get('inversion_images', '')} forget images per split on every "
            f"model ({cfg.get('method')}, start `{cfg.get('init')}`, "
            f"{cfg.get('restarts', 1)} × {cfg.get('iterations')} iterations (restarts × iterations; each image keeps "
            "the restart with the lower objective), TV "
            f"{cfg.get('tv_weight')}, lr {cfg.get('lr')}, decay `{cfg.get('decay')}`). No-information references on "
            f"the same images, PSNR / SSIM: {'; '.join(parts)}. Inconclusive splits (the original model not 1 dB "
            f"above every reference): {sum(bool(f) for f in flags)} of {len(flags)}.",
        ]
    return "\n".join(lines)


def preset_check(results: list[dict]) -> str:
    """Per method and split: UA and ΔTA, and whether the preset meets UA ≥ 95 with TA within 5 points (✓) or not."""
    from opc_core.methods.opc import method_label

    methods = list(dict.fromkeys(row["method"] for r in results for row in r["rows"]))
    originals = method_rows(results, "original")
    head = ["method", *[f"{{{','.join(map(str, r['forget_classes']))}}} seed {r['seed']}" for r in results]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        rows = method_rows(results, m)
        cells = []
        for ua, dta in zip(column(rows, "ua"), column(rows, "dta", originals), strict=True):
            if ua is None or dta is None:
                cells.append("–")
                continue
            ok = "✓" if ua >= 95 and dta >= -5 else "**miss**"
            cells.append(f"UA {ua:.1f}, ΔTA {dta:+.1f} {ok}")
        lines.append(f"| {method_label(m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def findings(results: list[dict]) -> list[str]:
    """The measured claims of one dataset and model, each sentence carrying its numbers (nothing assumed)."""
    from opc_core.methods.opc import method_label

    methods = list(dict.fromkeys(row["method"] for r in results for row in r["rows"]))
    fm = {m: column(method_rows(results, m), "after:fm") for m in methods}
    out = []
    for deep in [m for m in methods if m == "opc_features" or "layer=features" in m]:
        others = [m for m in methods if m != deep and m not in ("opc_features",) and "layer=features" not in m]
        margins = [
            d - max(v for v in col if v is not None)
            for d, *col in zip(fm[deep], *[fm[o] for o in others], strict=True)
            if d is not None and any(v is not None for v in col)
        ]
        if margins:
            out.append(
                f"**{method_label(deep)}**: UA after FM {_pm(fm[deep])}; its margin over the best other method present "
                f"({', '.join(method_label(o) for o in others)}) is {min(margins):.1f} to {max(margins):.1f} "
                "points across the splits."
            )
    if "opc" in methods:
        rows = method_rows(results, "opc")
        out.append(
            f"**{method_label('opc')}**: UA after FM {_pm(fm['opc'])}; FM fed only the null-space part of its features "
            f"{_pm(column(rows, 'diag:fm_null_ua'))}, only the row-space part {_pm(column(rows, 'diag:fm_row_ua'))}; "
            f"a probe inside D_f tells the forget classes apart at {_pm(column(rows, 'diag:probe_inside'))}% "
            f"(chance {_pm(column(rows, 'diag:probe_inside_chance'))}%)."
        )
    relearn = {m: stat(column(method_rows(results, m), "after:relearn"))[0] for m in methods}
    if relearn:
        kept = [method_label(m) for m, v in relearn.items() if v == v and v >= 90]
        low = [f"{method_label(m)} {v:.1f}" for m, v in relearn.items() if v == v and v < 90]
        out.append(
            f"**Relearning** on a few leaked forget images: UA after relearn {', '.join(low) or '–'} (mean); "
            + (f"only {', '.join(kept)} stay at 90 or above." if kept else "none stays at 90 or above.")
        )
    out += [done_check(r, deep) for r in results for deep in methods if deep == "opc_features"]
    psnr = {m: column(method_rows(results, m), "inv:psnr") for m in ["original", *methods]}
    if stat(psnr["original"])[2]:
        parts = [f"{method_label(m)} {_pm(v)}" for m, v in psnr.items() if stat(v)[2]]
        out.append(f"**Gradient inversion**, PSNR (dB) over the splits: {', '.join(parts)}.")
    return out


def done_check(result: dict, deep: str = "opc_features") -> str:
    """One split against the project's bar: UA after FM of ``deep`` ≥ 20 points above every other method and retrain,
    its TA within 5 points of the original's, inversion PSNR ≥ 14 dB on the original and ≥ 4 dB lower on ``deep``."""
    from opc_core.methods.opc import method_label

    rows = {r["method"]: r for r in result["rows"]}
    d, orig = rows.get(deep), result.get("original") or {}
    if d is None:
        return ""
    fm = {m: r["recovered_ua"].get("fm") for m, r in rows.items()}
    best = max((v, m) for m, v in fm.items() if m != deep and v is not None)
    dta = d["ta"] - orig["ta"] if orig.get("ta") is not None else math.nan
    p_o = (result.get("inversion_original") or {}).get("psnr", math.nan)
    p_d = (d.get("inversion") or {}).get("psnr", math.nan)
    checks = {"margin ≥ 20": fm[deep] - best[0] >= 20, "ΔTA ≥ −5": dta >= -5}
    if math.isfinite(p_o):
        checks.update({"original ≥ 14 dB": p_o >= 14, "drop ≥ 4 dB": p_o - p_d >= 4})
    split = f"{{{','.join(map(str, result['forget_classes']))}}} seed {result['seed']}"
    failed = [k for k, ok in checks.items() if not ok]
    verdict = "meets the bar (" + ", ".join(checks) + ")." if not failed else f"**misses** {', '.join(failed)}."
    if "retrain" not in rows:
        verdict = f"**not judged**: retrain did not finish on this split (compared only with {', '.join(rows)})."
    return (
        f"Split {split}: {method_label(deep)} UA after FM {fm[deep]:.1f} vs the best other {best[0]:.1f} "
        f"({method_label(best[1])}), margin {fm[deep] - best[0]:+.1f}; ΔTA {dta:+.1f}; "
        + (
            f"inversion PSNR original {p_o:.2f} dB, {method_label(deep)} {p_d:.2f} dB ({p_d - p_o:+.2f})"
            if math.isfinite(p_o)
            else "inversion not measured on this split"
        )
        + f": {verdict}"
    )


def results_markdown(results: list[dict]) -> str:
    """docs/results.md: per dataset and model, the measured findings and the mean ± std table; the paper beside."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        groups.setdefault((r["dataset"], r["model"]), []).append(r)
    lines = [
        "# Shallow vs deep forgetting — results beside the paper",
        "",
        "Generated by `python scripts/make_results.py render` from the benchmark results in "
        "[bench/results/](bench/results/) (each made by `python scripts/make_results.py run ...`, the library's bench "
        "workflow on one split; the command of every section is in its JSON). UA = 100 − accuracy on D_f (higher = "
        'forgotten); TA = test accuracy on the retained classes, ΔTA = TA − the original\'s; "UA after X" = UA of '
        "the predictor attack X builds (higher = the forgetting survived). The diagnostic (docs/science.md §5-§6): FM "
        "fed only the part of the unlearned features in the head's null space or row space; a linear probe inside "
        "D_f (two-fold cross-validated accuracy telling the forget classes apart); separation kept = the Fisher "
        "ratio among the forget classes after ÷ before (scale-free; 0 = one point). PSNR/SSIM: gradient inversion "
        "against each model (measured again on the same runs and images after a change of its defaults by "
        "`python scripts/make_results.py reinvert`; the JSON's `inversion_measured` says so).",
        "",
        PAPER,
    ]
    for rs in groups.values():
        lines += ["", results_section(rs), "", "Measured:", ""]
        lines += [f"- {s}" for s in findings(rs)]
        lines += ["", "Presets on each split (goal: UA ≥ 95 with TA within 5 points of the original's):", ""]
        lines += [preset_check(rs)]
    return "\n".join(lines) + "\n"
