"""The flavors API (/api/v1/flavors): the sizes a tenant may give its instances."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import mixins, serializers

from compute import selectors
from compute.models import Flavor
from iaas.api.pagination import CreatedCursorPagination
from tenants.api.viewsets import TenantScopedViewSet


class SizeCursorPagination(CreatedCursorPagination):
    """Flavors smallest first, as a size list reads (the name breaks ties)."""

    ordering = ("vcpus", "memory_mb", "disk_gb", "name")  # type: ignore[assignment]


class FlavorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Flavor
        fields = ["id", "name", "vcpus", "memory_mb", "disk_gb", "is_public", "disabled"]
        read_only_fields = fields


class FlavorViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The flavors this tenant may use."""

    queryset = Flavor.objects.none()
    serializer_class = FlavorSerializer
    pagination_class = SizeCursorPagination

    def get_queryset(self) -> QuerySet[Flavor]:
        return selectors.flavor_list(self.tenant_context.tenant)
