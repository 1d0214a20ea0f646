from __future__ import annotations

import django_filters

from compute.models import KeyPair


class KeyPairFilter(django_filters.FilterSet):
    name = django_filters.CharFilter()
    fingerprint = django_filters.CharFilter()
    key_type = django_filters.CharFilter()

    class Meta:
        model = KeyPair
        fields = ["name", "fingerprint", "key_type"]
