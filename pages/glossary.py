"""Glossary: every term and symbol the pages use, in plain words, grouped, with a filter."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from opc_core.report.glossary import entries

st.title("Glossary")
st.markdown(
    "Every term, symbol and abbreviation on these pages in one or two plain sentences. The section numbers point "
    "to `docs/science.md`, which explains the science in more depth."
)
query = st.text_input("Filter", placeholder="e.g. UA, D_f, CKA, ‖m(x)‖", key="gl_filter").strip().lower()
for group, items in entries().items():
    rows = [
        {"term": term, "symbol": symbol, "in plain words": text, "docs/science.md": section}
        for term, symbol, text, section in items
        if not query or query in f"{term} {symbol} {text}".lower()
    ]
    if rows:
        st.subheader(group)
        st.dataframe(
            pd.DataFrame(rows),
            hide_index=True,
            column_config={"in plain words": st.column_config.TextColumn(width="large")},
            key=f"gl_{group}",
        )
