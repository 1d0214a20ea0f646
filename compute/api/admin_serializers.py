"""Shapes of the operators' inventory API (zones and hosts)."""

from __future__ import annotations

from urllib.parse import urlsplit

from rest_framework import serializers

from compute.models import Host, StoragePool, Zone
from iaas.api.serializers import StrictCharField, StrictIntegerField, StrictSerializer

LIBVIRT_SCHEMES = {"qemu", "qemu+ssh", "qemu+tls", "qemu+tcp", "qemu+unix", "test"}


class ZoneSerializer(serializers.ModelSerializer):
    region = serializers.CharField(source="region.name", read_only=True)

    class Meta:
        model = Zone
        fields = [
            "id", "name", "region", "site", "city", "country", "jurisdiction",
            "certifications", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class ZoneCreateSerializer(StrictSerializer):
    region = serializers.SlugField(max_length=32)
    name = serializers.SlugField(max_length=32)
    site = StrictCharField(max_length=100)
    city = StrictCharField(max_length=100)
    country = StrictCharField(min_length=2, max_length=2)
    jurisdiction = StrictCharField(min_length=2, max_length=2)
    certifications = serializers.ListField(
        child=StrictCharField(max_length=50), required=False, max_length=20
    )


class StoragePoolSerializer(serializers.ModelSerializer):
    class Meta:
        model = StoragePool
        fields = ["role", "backend", "name", "path", "capacity_bytes", "available_bytes"]
        read_only_fields = fields


class HostSerializer(serializers.ModelSerializer):
    zone = serializers.CharField(source="zone.name", read_only=True)
    jurisdiction = serializers.CharField(source="zone.jurisdiction", read_only=True)
    storage_pools = StoragePoolSerializer(many=True, read_only=True)

    class Meta:
        model = Host
        fields = [
            "id", "name", "zone", "jurisdiction", "libvirt_uri", "ssh_host", "ssh_port",
            "ssh_username", "ssh_host_key_fingerprint", "storage_root", "domain_type",
            "domain_types", "arch", "cpu_model", "cpus", "memory_mb", "disk_gb",
            "libvirt_version", "hypervisor_version", "reserved_cpus", "reserved_memory_mb",
            "reserved_disk_gb", "cpu_allocation_ratio", "ram_allocation_ratio",
            "disk_allocation_ratio", "state", "state_reason", "last_heartbeat_at",
            "last_heartbeat_error", "storage_pools", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class HostCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=63)
    zone = serializers.SlugField(max_length=32)
    libvirt_uri = StrictCharField(max_length=255)
    storage_root = StrictCharField(max_length=255, default="/var/lib/andromede")
    ssh_host = StrictCharField(max_length=255, required=False, allow_blank=True, default="")
    ssh_port = StrictIntegerField(min_value=1, max_value=65535, default=22)
    ssh_username = StrictCharField(max_length=64, default="root")
    expected_fingerprint = StrictCharField(
        max_length=100, required=False, allow_blank=True, default=""
    )
    domain_type = serializers.ChoiceField(
        choices=Host.DomainType.choices, required=False, allow_blank=True, default=""
    )

    def validate_libvirt_uri(self, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in LIBVIRT_SCHEMES:
            raise serializers.ValidationError(
                f"Use a libvirt URI with one of the schemes {', '.join(sorted(LIBVIRT_SCHEMES))}."
            )
        return value

    def validate_storage_root(self, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/") or "\n" in value:
            raise serializers.ValidationError("An absolute path without '..'.")
        return value.rstrip("/") or "/"

    def validate_expected_fingerprint(self, value: str) -> str:
        if value and not value.startswith("SHA256:"):
            raise serializers.ValidationError("A fingerprint as ssh-keygen -l prints it: SHA256:…")
        return value


class HostStateSerializer(StrictSerializer):
    reason = StrictCharField(max_length=255, required=False, allow_blank=True, default="")
