"""The realisation state every network resource shares."""

from __future__ import annotations

from django.db import models


class Realisation(models.TextChoices):
    """Where a resource stands with respect to OVN: `building` until its intent has been
    written to the northbound database, `active` once it has, `error` (with a fault the
    tenant can read) when that failed, `deleting` while it is removed."""

    BUILDING = "building"
    ACTIVE = "active"
    ERROR = "error"
    DELETING = "deleting"
