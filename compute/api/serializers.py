from __future__ import annotations

from rest_framework import serializers

from compute.models import KeyPair
from iaas.api.serializers import StrictCharField, StrictSerializer


class KeyPairSerializer(serializers.ModelSerializer):
    class Meta:
        model = KeyPair
        fields = ["id", "name", "key_type", "bits", "fingerprint", "public_key", "created_at"]
        read_only_fields = fields


class KeyPairImportSerializer(StrictSerializer):
    name = StrictCharField(max_length=64)
    public_key = StrictCharField(max_length=16 * 1024, trim_whitespace=True)
