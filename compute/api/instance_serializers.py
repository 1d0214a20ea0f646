"""Shapes of flavors, instances and operations."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from compute.api.image_serializers import ImageSerializer
from compute.models import Flavor, Instance, Operation
from iaas.api.serializers import StrictCharField, StrictIntegerField, StrictSerializer


class FlavorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Flavor
        fields = ["id", "name", "vcpus", "memory_mb", "disk_gb", "is_public", "disabled"]
        read_only_fields = fields


class FlavorCreateSerializer(StrictSerializer):
    name = serializers.SlugField(max_length=64)
    vcpus = StrictIntegerField(min_value=1, max_value=256)
    memory_mb = StrictIntegerField(min_value=16, max_value=4 * 1024 * 1024)
    disk_gb = StrictIntegerField(min_value=0, max_value=65536)
    is_public = serializers.BooleanField(default=True)
    tenants = serializers.ListField(child=serializers.SlugField(), required=False, default=list)


class InstanceSerializer(serializers.ModelSerializer):
    flavor = serializers.CharField(source="flavor.name", read_only=True)
    image = serializers.UUIDField(source="image_id", read_only=True)
    keypair = serializers.CharField(source="keypair.name", read_only=True, default=None)
    zone = serializers.SerializerMethodField()
    ip = serializers.SerializerMethodField()

    class Meta:
        model = Instance
        fields = [
            "id", "name", "status", "task_state", "power_state", "fault", "flavor", "image",
            "keypair", "vcpus", "memory_mb", "disk_gb", "zone", "ip", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_zone(self, instance: Instance) -> str | None:
        return instance.host.zone.name if instance.host else None

    def get_ip(self, instance: Instance) -> str | None:
        port = getattr(instance, "port", None)
        return port.ip if port is not None else None


class InstanceCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=63)
    flavor = StrictCharField(max_length=64, help_text="Flavor name or id.")
    image = serializers.UUIDField()
    keypair = StrictCharField(max_length=64, required=False, help_text="Keypair name.")
    user_data = StrictCharField(
        required=False, allow_blank=True, trim_whitespace=False, default="", max_length=65536
    )
    zone = serializers.SlugField(max_length=32, required=False)
    server_group = StrictCharField(
        max_length=64, required=False, help_text="Server group name or id."
    )


class OperationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Operation
        fields = [
            "id", "action", "target_type", "target_id", "status", "attempts", "progress",
            "steps", "error", "actor_label", "request_id", "created_at", "started_at",
            "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class InstanceAcceptedSerializer(serializers.Serializer):
    def to_representation(self, pair: Any) -> dict[str, Any]:
        instance, operation = pair
        return {
            "instance": InstanceSerializer(instance).data,
            "operation": OperationSerializer(operation).data,
        }


class InstanceVerbSerializer(StrictSerializer):
    """start and stop take no fields (any field is refused)."""


class InstanceRebootSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["soft", "hard"], default="soft")


class InstanceOperationSerializer(serializers.Serializer):
    """The answer to a verb: the operation that carries it out."""

    operation = OperationSerializer(read_only=True)


class InstanceRebuildSerializer(StrictSerializer):
    image = serializers.UUIDField(help_text="The image to rebuild from (one you may boot).")


class InstanceResizeSerializer(StrictSerializer):
    flavor = StrictCharField(max_length=64, help_text="The new flavor's name or id.")


class InstanceSnapshotSerializer(StrictSerializer):
    name = StrictCharField(max_length=128, help_text="The new private image's name.")


class InstanceSnapshotAcceptedSerializer(serializers.Serializer):
    """202 to a snapshot: the new image (`saving`) and the operation filling it."""

    image = ImageSerializer(read_only=True)
    operation = OperationSerializer(read_only=True)
