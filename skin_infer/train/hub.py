"""Is the Hugging Face Hub (or W&B's server) reachable? Asked before any download or sync, so offline machines
fail fast and clearly (or track offline)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

TIMEOUT = 3.0


def hub_reachable() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return False
    return reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))


def reachable(url: str) -> bool:
    """Does a TCP connection to ``url``'s host open within ``TIMEOUT`` seconds?"""
    endpoint = urlparse(url)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=TIMEOUT).close()
        return True
    except OSError:
        return False
