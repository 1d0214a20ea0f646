"""Shapes of server groups."""

from __future__ import annotations

from rest_framework import serializers

from compute.models import ServerGroup
from iaas.api.serializers import StrictCharField, StrictSerializer


class ServerGroupSerializer(serializers.ModelSerializer):
    members = serializers.SerializerMethodField()

    class Meta:
        model = ServerGroup
        fields = ["id", "name", "policy", "members", "created_at"]
        read_only_fields = fields

    def get_members(self, group: ServerGroup) -> list[str]:
        """The ids of the group's instances that are not deleted."""
        return [
            str(pk)
            for pk in group.members.exclude(status="deleted")
            .order_by("created_at")
            .values_list("pk", flat=True)
        ]


class ServerGroupCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=64)
    policy = serializers.ChoiceField(choices=ServerGroup.Policy.choices)
