"""The one rule for names of network resources."""

from __future__ import annotations

import re

from iaas.errors import InvalidRequest

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(kind: str, name: str, *, blank: bool = False) -> str:
    """`name` if it is 1 to 64 letters, digits, '.', '_' and '-' starting with a letter or
    digit (or empty, when `blank` allows it)."""
    if blank and name == "":
        return name
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidRequest(
            f"A {kind} name is 1 to 64 letters, digits, '.', '_' and '-', starting with a "
            "letter or digit.",
            code="invalid_name",
            details={"name": name[:80]},
        )
    return name


def check_description(description: str) -> str:
    if len(description) > 255 or any(ord(c) < 32 and c not in "\t" for c in description):
        raise InvalidRequest(
            "A description is at most 255 characters, without control characters.",
            code="invalid_description",
        )
    return description
