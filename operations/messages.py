"""What tenants may read of an infrastructure error (review L2).

Operations, their steps and instance faults are shown to tenants. A driver error often names
paths on the host (`/var/lib/andromede/instances/…`), libvirt URIs or the control plane's
SSH account: `tenant_text` keeps the message and removes those, so the tenant learns what
failed and what to do, not how the hosts are laid out. The full error is still logged for
operators."""

from __future__ import annotations

import re

_URI = re.compile(r"\b(?:qemu|test|ssh|tcp|tls|unix|qemu\+\w+)://\S*", re.IGNORECASE)
_PATH = re.compile(r"(?<![\w.])/(?:[\w.@+-]+/)*[\w.@+-]+")


def tenant_text(error: object, limit: int = 500) -> str:
    """`error` as text, without host paths or connection URIs, at most `limit` characters."""
    text = _URI.sub("<host>", str(error))
    return _PATH.sub("<path>", text)[:limit]
