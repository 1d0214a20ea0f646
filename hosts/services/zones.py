"""Zones: the datacenters tenant data may live in, each under a jurisdiction (DESIGN §6)."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction

from hosts.models import Region, Zone
from iaas.audit import Actor, audit_record
from iaas.errors import ConflictError, InvalidRequest

_ISO = re.compile(r"^[A-Z]{2}$")


@transaction.atomic
def zone_create(
    *,
    actor: Actor,
    region: str,
    name: str,
    site: str,
    city: str,
    country: str,
    jurisdiction: str,
    certifications: list[str] | None = None,
) -> Zone:
    """Declare a zone of `region` (created on first use); 409 `already_exists` for a name in
    use, 400 for country or jurisdiction codes that are not ISO 3166 alpha-2."""
    country, jurisdiction = country.upper(), jurisdiction.upper()
    if not _ISO.fullmatch(country) or not _ISO.fullmatch(jurisdiction):
        raise InvalidRequest("country and jurisdiction are ISO 3166 codes such as FR.")
    region_row, _ = Region.objects.get_or_create(name=region)
    try:
        with transaction.atomic():  # the unique name decides, even under concurrency
            zone = Zone.objects.create(
                region=region_row,
                name=name,
                site=site,
                city=city,
                country=country,
                jurisdiction=jurisdiction,
                certifications=list(certifications or []),
            )
    except IntegrityError as exc:
        raise ConflictError(f"A zone named {name!r} exists.", code="already_exists") from exc
    audit_record(
        actor=actor,
        action="zone.create",
        target=zone,
        details={"region": region, "jurisdiction": jurisdiction, "country": country},
    )
    return zone
