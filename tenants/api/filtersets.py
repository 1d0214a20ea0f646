"""Query filters of the tenancy endpoints."""

from __future__ import annotations

import django_filters

from iaas.api.filters import StrictBooleanFilter, StrictIsoDateTimeFilter
from iaas.models import AuditEvent
from tenants.models import ApiToken, Membership, Role, Tenant


class MembershipFilterSet(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)
    username = django_filters.CharFilter(field_name="user__username")

    class Meta:
        model = Membership
        fields = ["role", "username"]


class TokenFilterSet(django_filters.FilterSet):
    revoked = StrictBooleanFilter(field_name="revoked_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = ApiToken
        fields = ["revoked"]


class AuditEventFilterSet(django_filters.FilterSet):
    action = django_filters.CharFilter()
    outcome = django_filters.ChoiceFilter(choices=AuditEvent.Outcome.choices)
    created_after = StrictIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = StrictIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "outcome", "created_after", "created_before"]


class OperatorAuditEventFilterSet(AuditEventFilterSet):
    tenant = django_filters.UUIDFilter(field_name="tenant_id")

    class Meta(AuditEventFilterSet.Meta):
        fields = [*AuditEventFilterSet.Meta.fields, "tenant"]


class TenantFilterSet(django_filters.FilterSet):
    slug = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=Tenant.Status.choices)

    class Meta:
        model = Tenant
        fields = ["slug", "status"]
