"""Filters of the compute APIs."""

from __future__ import annotations

import django_filters

from compute.models import Instance, KeyPair, ServerGroup


class KeyPairFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter()
    fingerprint = django_filters.CharFilter()
    key_type = django_filters.CharFilter()

    class Meta:
        model = KeyPair
        fields = ["name", "fingerprint", "key_type"]


class InstanceFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=Instance.Status.choices)

    class Meta:
        model = Instance
        fields = ["name", "status"]


class ServerGroupFilterSet(django_filters.FilterSet):
    name = django_filters.CharFilter()
    policy = django_filters.ChoiceFilter(choices=ServerGroup.Policy.choices)

    class Meta:
        model = ServerGroup
        fields = ["name", "policy"]
