"""Filters of the network APIs."""

from __future__ import annotations

import django_filters

from network.models import (
    FloatingIP,
    Network,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)


class NetworkFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter()
    external = django_filters.BooleanFilter()
    shared = django_filters.BooleanFilter()

    class Meta:
        model = Network
        fields = ["name", "external", "shared"]


class SubnetFilterSet(django_filters.FilterSet):
    network = django_filters.UUIDFilter(field_name="network_id")
    cidr = django_filters.CharFilter()

    class Meta:
        model = Subnet
        fields = ["network", "cidr"]


class PortFilterSet(django_filters.FilterSet):
    network = django_filters.UUIDFilter(field_name="network_id")
    device_id = django_filters.UUIDFilter()
    device_owner = django_filters.ChoiceFilter(choices=Port.Owner.choices)
    mac_address = django_filters.CharFilter(field_name="mac")

    class Meta:
        model = Port
        fields = ["network", "device_id", "device_owner", "mac_address"]


class SecurityGroupFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter()

    class Meta:
        model = SecurityGroup
        fields = ["name"]


class SecurityGroupRuleFilterSet(django_filters.FilterSet):
    security_group = django_filters.UUIDFilter(field_name="security_group_id")
    direction = django_filters.ChoiceFilter(choices=SecurityGroupRule.Direction.choices)

    class Meta:
        model = SecurityGroupRule
        fields = ["security_group", "direction"]


class RouterFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter()

    class Meta:
        model = Router
        fields = ["name"]


class FloatingIPFilterSet(django_filters.FilterSet):
    port = django_filters.UUIDFilter(field_name="port_id")
    address = django_filters.CharFilter()

    class Meta:
        model = FloatingIP
        fields = ["port", "address"]
