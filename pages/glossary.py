"""Glossary: every term and symbol the pages use, in plain words, grouped, with a filter."""

from __future__ import annotations

import streamlit as st

from opc_core.report.glossary import entries

st.title("Glossary")
st.markdown(
    "Every term, symbol and abbreviation on these pages in one or two plain sentences. The section numbers point "
    "to `docs/science.md`, which explains the science in more depth."
)
query = st.text_input("Filter", placeholder="e.g. UA, D_f, CKA, ‖m(x)‖", key="gl_filter").strip().lower()
for group, items in entries().items():
    lines = [
        f"- **{term}**" + (f" · `{symbol}`" if symbol else "") + f" — {text}" + (f" *({section})*" if section else "")
        for term, symbol, text, section in items
        if not query or query in f"{term} {symbol} {text}".lower()
    ]
    if lines:
        st.subheader(group)
        st.markdown("\n".join(lines))
