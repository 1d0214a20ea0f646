"""The security groups API (/api/v1/security-groups, /api/v1/security-group-rules):
stateful firewalls on ports, allow rules only."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from iaas.api.idempotency import IdempotentCreateMixin
from iaas.api.serializers import StrictCharField, StrictIntegerField, StrictSerializer
from network import selectors
from network.api.fields import ReadOnly, TenantRef
from network.api.filtersets import SecurityGroupFilterSet, SecurityGroupRuleFilterSet
from network.models import SecurityGroup, SecurityGroupRule
from network.services import security_groups as group_services
from tenants.api.viewsets import TenantScopedViewSet


class SecurityGroupRuleSerializer(ReadOnly):
    class Meta:
        model = SecurityGroupRule
        fields = [
            "id", "security_group", "direction", "ethertype", "protocol", "port_range_min",
            "port_range_max", "remote_ip_prefix", "remote_group", "description", "created_at",
        ]  # fmt: skip


class SecurityGroupSerializer(ReadOnly):
    rules = SecurityGroupRuleSerializer(many=True)

    class Meta:
        model = SecurityGroup
        fields = ["id", "name", "description", "is_default", "rules", "created_at"]


class SecurityGroupCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64)
    description = StrictCharField(max_length=255, required=False, allow_blank=True)


class SecurityGroupUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64, required=False)
    description = StrictCharField(max_length=255, required=False, allow_blank=True)


class SecurityGroupViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Security groups: what no rule allows is dropped. Your `default` group (made with your
    first port or group) lets in traffic from its own members only and lets everything out; a
    new group lets everything out and nothing in. Changes reach running guests at once. A
    group in use by a port, or named by another group's rule, cannot be deleted (409
    `security_group_in_use`). Counts against the `security_groups` quota."""

    audit_resource = "security_group"
    queryset = SecurityGroup.objects.none()
    serializer_class = SecurityGroupSerializer
    filterset_class = SecurityGroupFilterSet

    def get_queryset(self) -> QuerySet[SecurityGroup]:
        return selectors.security_group_list(self.tenant_context.tenant).order_by("created_at")

    @extend_schema(request=SecurityGroupCreateSerializer, responses={201: SecurityGroupSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = SecurityGroupCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        group = group_services.security_group_create(
            actor=self.actor, tenant=self.tenant_context.tenant, **serializer.validated_data
        )
        group = self.get_queryset().get(pk=group.pk)
        return Response(SecurityGroupSerializer(group).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SecurityGroupUpdateSerializer, responses=SecurityGroupSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        group = self.get_object()
        serializer = SecurityGroupUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        group_services.security_group_update(
            actor=self.actor, group=group, **serializer.validated_data
        )
        return Response(SecurityGroupSerializer(self.get_queryset().get(pk=group.pk)).data)

    def perform_destroy(self, instance: SecurityGroup) -> None:
        group_services.security_group_delete(actor=self.actor, group=instance)


class SecurityGroupRuleCreateSerializer(StrictSerializer):
    security_group = TenantRef("security group")
    direction = serializers.ChoiceField(choices=SecurityGroupRule.Direction.choices)
    ethertype = serializers.ChoiceField(choices=SecurityGroupRule.Ethertype.choices, required=False)
    protocol = StrictCharField(max_length=8, required=False, allow_blank=True, allow_null=True)
    port_range_min = StrictIntegerField(required=False, allow_null=True)
    port_range_max = StrictIntegerField(required=False, allow_null=True)
    remote_ip_prefix = StrictCharField(
        max_length=43, required=False, allow_blank=True, allow_null=True
    )
    remote_group = TenantRef("security group", required=False, allow_null=True)
    description = StrictCharField(max_length=255, required=False, allow_blank=True)


class SecurityGroupRuleViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Security group rules: allow `direction` traffic of `protocol` (tcp, udp, icmp, a
    number, or any when empty) on a port range, from (ingress) or to (egress)
    `remote_ip_prefix` or the members of `remote_group` (anyone when neither is given).
    A duplicate is refused (409 `rule_exists`). Counts against `security_group_rules`."""

    audit_resource = "security_group_rule"
    queryset = SecurityGroupRule.objects.none()
    serializer_class = SecurityGroupRuleSerializer
    filterset_class = SecurityGroupRuleFilterSet

    def get_queryset(self) -> QuerySet[SecurityGroupRule]:
        return selectors.security_group_rule_list(self.tenant_context.tenant).order_by("created_at")

    @extend_schema(
        request=SecurityGroupRuleCreateSerializer, responses={201: SecurityGroupRuleSerializer}
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def create_resource(self, request: Request) -> Response:
        serializer = SecurityGroupRuleCreateSerializer(data=request.data, context={"view": self})
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        rule = group_services.security_group_rule_create(
            actor=self.actor,
            group=data.pop("security_group"),
            direction=data["direction"],
            ethertype=data.get("ethertype", "IPv4"),
            protocol=data.get("protocol") or "",
            port_range_min=data.get("port_range_min"),
            port_range_max=data.get("port_range_max"),
            remote_ip_prefix=data.get("remote_ip_prefix") or "",
            remote_group=data.get("remote_group"),
            description=data.get("description", ""),
        )
        return Response(SecurityGroupRuleSerializer(rule).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: SecurityGroupRule) -> None:
        group_services.security_group_rule_delete(actor=self.actor, rule=instance)
