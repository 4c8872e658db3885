"""The dashboard serves this machine only, wherever it is started from.

``.streamlit/config.toml`` beside ``app.py`` sets ``server.address = "127.0.0.1"``; Streamlit 1.46 and later read it
next to the main script, so ``streamlit run /path/app.py`` started from any folder listens on the loopback address
only (requirements.txt asks for such a Streamlit). :func:`refuse_remote_sessions` covers a server that listens on
every interface anyway (an older Streamlit, or that file removed) without anyone asking: a browser on another machine
gets a refusal instead of the app. An address set on purpose (``--server.address``) is left alone.
"""

from __future__ import annotations

import ipaddress

import streamlit as st


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an IP address or ``localhost``) is this machine; None and names other than localhost: no."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(host.split("%")[0].strip("[]"))
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return (mapped or addr).is_loopback


def bound_address() -> str | None:
    """The address the server was told to listen on (None: every interface, Streamlit's default)."""
    return st.get_option("server.address") or None


def client_address() -> str | None:
    """The browser's address (None for a local connection, and outside a real server)."""
    return getattr(st.context, "ip_address", None)


def refuse_remote_sessions() -> None:
    """Stop the page for a browser on another machine when the server listens everywhere by default."""
    client = client_address()
    if bound_address() is None and client is not None and not is_loopback(client):
        st.error(
            "OPC Lab serves only the machine it runs on, and this server listens on every network interface. "
            "Restart it with `streamlit run app.py --server.address 127.0.0.1` (or `bash dev.sh dashboard`) and "
            "open it on that machine, or tunnel to it (e.g. `ssh -L 8501:127.0.0.1:8501`)."
        )
        st.stop()
