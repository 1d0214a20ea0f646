"""Reads of the host inventory (operators' and the scheduler's; no tenant owns these)."""

from __future__ import annotations

from django.db.models import QuerySet

from hosts.models import Host, OrphanReport, Zone


def zone_find(name: str) -> Zone | None:
    return Zone.objects.filter(name=name).select_related("region").first()


def zone_list() -> QuerySet[Zone]:
    return Zone.objects.select_related("region")


def host_list() -> QuerySet[Host]:
    return Host.objects.select_related("zone").prefetch_related("storage_pools")


def orphan_list() -> QuerySet[OrphanReport]:
    """What the reconcilers found on hosts and the database does not know, newest first."""
    return OrphanReport.objects.select_related("host__zone").order_by("-last_seen_at")
