"""Reads of the host inventory (operators' and the scheduler's; no tenant owns these)."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from hosts.models import Host, OrphanReport, Zone


def zone_find(name: str) -> Zone | None:
    return Zone.objects.filter(name=name).select_related("region").first()


def zone_list() -> QuerySet[Zone]:
    return Zone.objects.select_related("region")


def host_list() -> QuerySet[Host]:
    """Every host, with `instances`: how many instances (not deleted) it holds — what a
    drain waits to see at 0 (the instances' reverse relation, by name: hosts does not import
    compute)."""
    return (
        Host.objects.select_related("zone")
        .prefetch_related("storage_pools")
        .annotate(instances_count=Count("instances", filter=~Q(instances__status="deleted")))
    )


def orphan_list() -> QuerySet[OrphanReport]:
    """What the reconcilers found on hosts and the database does not know, newest first."""
    return OrphanReport.objects.select_related("host__zone").order_by("-last_seen_at")
