"""The keypairs API (/api/v1/keypairs): SSH public keys to inject into instances."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from compute import selectors
from compute.api.filtersets import KeyPairFilterSet
from compute.models import KeyPair
from compute.services import keypairs as keypair_services
from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictCharField, StrictSerializer
from tenants.api.viewsets import TenantScopedViewSet


class KeyPairSerializer(serializers.ModelSerializer):
    class Meta:
        model = KeyPair
        fields = ["id", "name", "key_type", "bits", "fingerprint", "public_key", "created_at"]
        read_only_fields = fields


class KeyPairImportSerializer(StrictSerializer):
    name = StrictCharField(max_length=64)
    public_key = StrictCharField(max_length=16 * 1024, trim_whitespace=True)


class KeyPairViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """SSH public keys to inject into instances. Import one with POST (ed25519, ecdsa, or
    rsa ≥ 2048 bits); names are unique per tenant; counts against the `keypairs` quota."""

    audit_resource = "keypair"
    queryset = KeyPair.objects.none()  # tells the schema generator the model; see get_queryset
    serializer_class = KeyPairSerializer
    filterset_class = KeyPairFilterSet

    def get_queryset(self) -> QuerySet[KeyPair]:
        return selectors.keypair_list(self.tenant_context.tenant)

    @extend_schema(request=KeyPairImportSerializer, responses={201: KeyPairSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = KeyPairImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        keypair = keypair_services.keypair_import(
            actor=self.actor, tenant=self.tenant_context.tenant, **serializer.validated_data
        )
        return Response(KeyPairSerializer(keypair).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: KeyPair) -> None:
        keypair_services.keypair_delete(actor=self.actor, keypair=instance)
