"""The volume types API (/api/v1/volume-types): the kinds of volume a tenant may create."""

from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import mixins, serializers

from tenants.api.viewsets import TenantScopedViewSet
from volumes import selectors
from volumes.models import VolumeType


class VolumeTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = VolumeType
        fields = [
            "id", "name", "description", "backend", "encrypted", "max_size_gb", "is_public",
            "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class VolumeTypeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The volume types this tenant may use: the public ones and those an operator made
    private to it. A type's `backend` says where its volumes are stored: `dir` (a file on
    one host) or `rbd` (Ceph, shared by the hosts of a zone)."""

    queryset = VolumeType.objects.none()
    serializer_class = VolumeTypeSerializer

    def get_queryset(self) -> QuerySet[VolumeType]:
        return selectors.volume_type_list(self.tenant_context.tenant)
