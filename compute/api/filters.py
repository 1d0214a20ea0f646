from __future__ import annotations

import django_filters

from compute.models import Instance, KeyPair, Operation


class KeyPairFilter(django_filters.FilterSet):
    name = django_filters.CharFilter()
    fingerprint = django_filters.CharFilter()
    key_type = django_filters.CharFilter()

    class Meta:
        model = KeyPair
        fields = ["name", "fingerprint", "key_type"]


class InstanceFilter(django_filters.FilterSet):
    name = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(choices=Instance.Status.choices)

    class Meta:
        model = Instance
        fields = ["name", "status"]


class OperationFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Operation.Status.choices)
    action = django_filters.CharFilter()
    target = django_filters.UUIDFilter(field_name="target_id")

    class Meta:
        model = Operation
        fields = ["status", "action", "target"]
