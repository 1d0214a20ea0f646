"""The instances API (/api/v1/instances): virtual machines and their verbs (DESIGN §2, §3,
§10)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from compute import selectors
from compute.api.filtersets import InstanceFilterSet
from compute.models import Flavor, Instance, ServerGroup
from compute.services import console as console_services
from compute.services import instances as instance_services
from compute.services import interfaces as interface_services
from compute.services import resize as resize_services
from compute.services import volumes as volume_services
from iaas.api.idempotency import IdempotentCreateMixin, idempotent
from iaas.api.schema import IDEMPOTENCY_KEY
from iaas.api.serializers import (
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
)
from iaas.errors import InvalidRequest, NotFoundError
from images import selectors as image_selectors
from images.api.images import ImageSerializer
from images.models import Image
from network import selectors as network_selectors
from network.api.ports import PortSerializer
from network.services.devices import NicRequest
from operations import selectors as operation_selectors
from operations.api.operations import OperationSerializer
from operations.models import Operation
from tenants.api.viewsets import TenantScopedViewSet
from volumes import selectors as volume_selectors
from volumes.api.volumes import VolumeSerializer
from volumes.models import Volume


class InstanceSerializer(serializers.ModelSerializer):
    flavor = serializers.CharField(source="flavor.name", read_only=True)
    image = serializers.UUIDField(source="image_id", read_only=True)
    keypair = serializers.CharField(
        source="keypair.name", read_only=True, default=None, allow_null=True
    )
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
        """The port's address, annotated by compute.selectors.instance_list."""
        return getattr(instance, "ip", None)


class BootVolumeSerializer(StrictSerializer):
    """The root disk as a volume: {"image", "size_gb"} makes one from an image (of
    `volume_type`, default the operators' default type), {"volume"} boots an existing one of
    yours (available, made from an image or from a snapshot of such a volume)."""

    image = serializers.UUIDField(required=False, help_text="The image to copy into it.")
    size_gb = StrictIntegerField(min_value=1, max_value=65536, required=False)
    volume_type = StrictCharField(max_length=64, required=False)
    volume = serializers.UUIDField(required=False, help_text="An existing volume to boot.")
    delete_on_termination = StrictBooleanField(
        required=False, default=False, help_text="Delete (erase) it with the instance."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "volume" in attrs:
            extra = sorted({"image", "size_gb", "volume_type"} & set(attrs))
            if extra:
                raise serializers.ValidationError(
                    {name: ["Not with an existing volume."] for name in extra}
                )
        elif not {"image", "size_gb"} <= set(attrs):
            raise serializers.ValidationError(
                'A boot volume is {"image", "size_gb"} (a new one) or {"volume"}.'
            )
        return attrs


class InstanceCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=63)
    flavor = StrictCharField(max_length=64, help_text="Flavor name or id.")
    image = serializers.UUIDField(
        required=False, help_text="Boot from this image (or give boot_volume)."
    )
    boot_volume = BootVolumeSerializer(
        required=False, help_text="Boot from a volume instead of an image."
    )
    keypair = StrictCharField(max_length=64, required=False, help_text="Keypair name.")
    user_data = StrictCharField(
        required=False, allow_blank=True, trim_whitespace=False, default="", max_length=65536
    )
    zone = serializers.SlugField(max_length=32, required=False)
    server_group = StrictCharField(
        max_length=64, required=False, help_text="Server group name or id."
    )
    networks = serializers.ListField(
        child=StrictCharField(max_length=64),
        required=False,
        max_length=8,
        help_text="Networks (name or id) to give a new port each, in NIC order.",
    )
    ports = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        max_length=8,
        help_text="Free ports of yours to attach, after the networks' ones.",
    )
    security_groups = serializers.ListField(
        child=StrictCharField(max_length=64),
        required=False,
        max_length=16,
        help_text="Security groups (name or id) of the new ports; default: yours.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("image" in attrs) == ("boot_volume" in attrs):
            raise serializers.ValidationError("Give an image or a boot_volume (one of them).")
        return attrs


class InstanceAcceptedSerializer(serializers.Serializer):
    """202 to a create: the new instance (`building`) and the operation that builds it."""

    instance = InstanceSerializer(read_only=True)
    operation = OperationSerializer(read_only=True)


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


class ConsoleSerializer(serializers.Serializer):
    output = serializers.CharField()
    captured_at = serializers.DateTimeField(allow_null=True)
    age_seconds = serializers.FloatField(allow_null=True)


class InterfaceAttachSerializer(StrictSerializer):
    network = StrictCharField(max_length=64, required=False, help_text="Network name or id.")
    port = serializers.UUIDField(required=False, help_text="A free port of yours.")
    security_groups = serializers.ListField(
        child=StrictCharField(max_length=64), required=False, max_length=16
    )


class InterfaceDetachSerializer(StrictSerializer):
    port = serializers.UUIDField(help_text="The port of the NIC to take out.")


class InterfaceAcceptedSerializer(serializers.Serializer):
    """202 to an attach: the NIC's port and the operation that plugs it in."""

    port = PortSerializer(read_only=True)
    operation = OperationSerializer(read_only=True)


class VolumeAttachSerializer(StrictSerializer):
    volume = serializers.UUIDField(help_text="An available volume of yours, on the same host.")


class VolumeAttachAcceptedSerializer(serializers.Serializer):
    """202 to an attach: the volume (`attaching`, with its device) and the operation that
    plugs it in."""

    volume = VolumeSerializer(read_only=True)
    operation = OperationSerializer(read_only=True)


class InstanceViewSet(
    IdempotentCreateMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantScopedViewSet,
):
    """Virtual machines. POST answers 202 with the instance (building) and the operation
    that builds it; DELETE answers 202 with the operation that removes it."""

    audit_resource = "instance"
    queryset = Instance.objects.none()
    serializer_class = InstanceSerializer
    filterset_class = InstanceFilterSet

    def get_queryset(self) -> QuerySet[Instance]:
        return selectors.instance_list(self.tenant_context.tenant)

    def _nics(self, data: dict[str, Any]) -> NicRequest:
        """The NICs asked for, each reference resolved among the tenant's own (400
        `unknown_network`, `unknown_port`, `unknown_security_group` otherwise)."""
        tenant = self.tenant_context.tenant

        def resolve(kind: str, find: Any, refs: list[Any]) -> list[Any]:
            found = []
            for ref in refs:
                item = find(tenant, str(ref))
                if item is None:
                    raise InvalidRequest(f"No such {kind}: {str(ref)[:64]}.",
                                         code=f"unknown_{kind.replace(' ', '_')}")  # fmt: skip
                found.append(item)
            return found

        groups = data.get("security_groups")
        return NicRequest(
            networks=resolve("network", network_selectors.network_find, data.get("networks", [])),
            ports=resolve("port", network_selectors.port_find, data.get("ports", [])),
            security_groups=None
            if groups is None
            else tuple(resolve("security group", network_selectors.security_group_find, groups)),
        )

    def _flavor(self, ref: str) -> Flavor:
        found = selectors.flavor_find(self.tenant_context.tenant, ref)
        if found is None:
            raise InvalidRequest(f"No flavor {ref!r} is available to you.", code="unknown_flavor")
        return found

    def _server_group(self, ref: str | None) -> ServerGroup | None:
        if not ref:
            return None
        group = selectors.server_group_find(self.tenant_context.tenant, ref)
        if group is None:
            raise InvalidRequest(f"No server group {ref!r}.", code="unknown_server_group")
        return group

    @extend_schema(request=InstanceCreateSerializer, responses={202: InstanceAcceptedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    def _image(self, ref: Any) -> Image:
        image = image_selectors.image_find(self.tenant_context.tenant, ref)
        if image is None:
            raise InvalidRequest("No such image.", code="unknown_image")
        return image

    def _boot_source(
        self, data: dict[str, Any]
    ) -> tuple[Image, instance_services.BootVolume | None]:
        """The image the instance boots (that of its boot volume), and its boot volume."""
        if "boot_volume" not in data:
            return self._image(data["image"]), None
        boot = data["boot_volume"]
        tenant = self.tenant_context.tenant
        if "volume" not in boot:
            ref = boot.get("volume_type") or settings.VOLUME_DEFAULT_TYPE
            volume_type = volume_selectors.volume_type_find(tenant, ref)
            if volume_type is None:
                raise InvalidRequest(
                    f"No volume type {ref[:80]!r} is available to you.", code="unknown_volume_type"
                )
            return self._image(boot["image"]), instance_services.BootVolume(
                volume_type=volume_type, size_gb=boot["size_gb"],
                delete_on_termination=boot["delete_on_termination"],
            )  # fmt: skip
        volume = volume_selectors.volume_find(tenant, str(boot["volume"]))
        if volume is None:
            raise InvalidRequest("No such volume.", code="unknown_volume")
        image = image_selectors.image_of_volume(volume.source_image_id)
        if image is None:
            raise InvalidRequest(
                "This volume was not made from an image: it is not bootable.",
                code="volume_not_bootable",
            )
        return image, instance_services.BootVolume(
            volume=volume, delete_on_termination=boot["delete_on_termination"]
        )

    def create_resource(self, request: Request) -> Response:
        serializer = InstanceCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        tenant = self.tenant_context.tenant
        image, boot_volume = self._boot_source(data)
        keypair = None
        if data.get("keypair"):
            keypair = selectors.keypair_find(tenant, data["keypair"])
            if keypair is None:
                raise InvalidRequest("No such keypair.", code="unknown_keypair")
        instance, operation = instance_services.instance_create(
            actor=self.actor,
            tenant=tenant,
            name=data["name"],
            flavor=self._flavor(data["flavor"]),
            image=image,
            keypair=keypair,
            user_data=data["user_data"],
            zone=data.get("zone"),
            server_group=self._server_group(data.get("server_group")),
            nics=self._nics(data),
            boot_volume=boot_volume,
        )
        instance = self.get_queryset().get(pk=instance.pk)
        body = {
            "instance": InstanceSerializer(instance).data,
            "operation": OperationSerializer(operation).data,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={202: InstanceOperationSerializer})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        operation = instance_services.instance_delete(actor=self.actor, instance=self.get_object())
        return self._accepted(operation)

    @extend_schema(responses=PortSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="interfaces", filterset_class=None,
            pagination_class=None)  # fmt: skip
    def interfaces(self, request: Request, pk: str | None = None) -> Response:
        """The instance's NICs (its ports, in order). POST attaches one live: a new port on
        `network`, or your free `port` (202 + operation; 409 `wrong_state` unless the
        instance is active or stopped and idle)."""
        instance = self.get_object()
        ports = network_selectors.port_list(self.tenant_context.tenant).filter(
            device_id=instance.pk, device_owner="compute:instance"
        )
        return Response(PortSerializer(ports.order_by("device_index"), many=True).data)

    @extend_schema(request=InterfaceAttachSerializer, responses={202: InterfaceAcceptedSerializer})
    @interfaces.mapping.post
    def attach_interface(self, request: Request, pk: str | None = None) -> Response:
        instance = self.get_object()
        serializer = InterfaceAttachSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        nics = self._nics(
            {
                "networks": [data["network"]] if "network" in data else [],
                "ports": [data["port"]] if "port" in data else [],
                **(
                    {"security_groups": data["security_groups"]}
                    if "security_groups" in data
                    else {}
                ),
            }
        )
        port, operation = interface_services.instance_interface_attach(
            actor=self.actor,
            instance=instance,
            network=nics.networks[0] if nics.networks else None,
            port=nics.ports[0] if nics.ports else None,
            security_groups=nics.security_groups,
        )
        port = network_selectors.port_list(self.tenant_context.tenant).get(pk=port.pk)
        body = {"port": PortSerializer(port).data, "operation": OperationSerializer(operation).data}
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=InterfaceDetachSerializer, responses={202: InstanceOperationSerializer})
    @action(detail=True, methods=["post"], url_path="detach-interface", filterset_class=None,
            pagination_class=None)  # fmt: skip
    def detach_interface(self, request: Request, pk: str | None = None) -> Response:
        """Take a NIC (its `port`) out of the instance, live."""
        instance = self.get_object()
        serializer = InterfaceDetachSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        port = network_selectors.port_find(
            self.tenant_context.tenant, str(serializer.validated_data["port"])
        )
        if port is None:
            raise InvalidRequest("No such port.", code="unknown_port")
        operation = interface_services.instance_interface_detach(
            actor=self.actor, instance=instance, port=port
        )
        return Response(
            {"operation": OperationSerializer(operation).data}, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(responses=VolumeSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="volumes", filterset_class=None,
            pagination_class=None)  # fmt: skip
    def volumes(self, request: Request, pk: str | None = None) -> Response:
        """The volumes attached to the instance (attaching, in-use or detaching), each with
        its device. POST `{"volume": id}` attaches one live (202 + operation; 409
        `wrong_state` unless the instance is active or stopped and idle, 409
        `volume_in_use` or `wrong_state` unless the volume is available, 409
        `volume_on_other_host` unless it is stored on the instance's host)."""
        instance = self.get_object()
        attached = volume_selectors.instance_volumes(self.tenant_context.tenant, instance.pk)
        return Response(VolumeSerializer(attached, many=True).data)

    def _volume(self, ref: str) -> Volume:
        found = volume_selectors.volume_find(self.tenant_context.tenant, ref)
        if found is None:
            raise NotFoundError("No such volume.", code="volume_not_found")
        return found

    @extend_schema(request=VolumeAttachSerializer, responses={202: VolumeAttachAcceptedSerializer})
    @volumes.mapping.post
    def attach_volume(self, request: Request, pk: str | None = None) -> Response:
        instance = self.get_object()
        serializer = VolumeAttachSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        volume = self._volume(str(serializer.validated_data["volume"]))
        operation = volume_services.instance_volume_attach(
            actor=self.actor, instance=instance, volume=volume
        )
        volume = volume_selectors.volume_list(self.tenant_context.tenant).get(pk=volume.pk)
        body = {"volume": VolumeSerializer(volume).data,
                "operation": OperationSerializer(operation).data}  # fmt: skip
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        responses={202: InstanceOperationSerializer},
        parameters=[
            OpenApiParameter(
                "volume_id", OpenApiTypes.UUID, OpenApiParameter.PATH,
                description="The attached volume's id.",
            )
        ],
    )  # fmt: skip
    @action(detail=True, methods=["delete"], url_path=r"volumes/(?P<volume_id>[^/.]+)",
            filterset_class=None, pagination_class=None)  # fmt: skip
    def detach_volume(
        self, request: Request, pk: str | None = None, volume_id: str | None = None
    ) -> Response:
        """Detach a volume from the instance, live (202 + operation; 409
        `volume_not_attached` if it is not attached here). The guest must release the disk
        within 20 s; if it does not, the volume stays in-use with a fault: detach again."""
        instance = self.get_object()
        volume = self._volume(str(volume_id))
        return self._accepted(
            volume_services.instance_volume_detach(
                actor=self.actor, instance=instance, volume=volume
            )
        )

    def _accepted(self, operation: Operation) -> Response:
        return Response(
            {"operation": OperationSerializer(operation).data}, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(request=InstanceVerbSerializer, responses={202: InstanceOperationSerializer})
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def start(self, request: Request, pk: str | None = None) -> Response:
        """Boot a stopped instance (409 `wrong_state` unless it is stopped and idle)."""
        instance = self.get_object()
        InstanceVerbSerializer(data=request.data).is_valid(raise_exception=True)
        return self._accepted(instance_services.instance_start(actor=self.actor, instance=instance))

    @extend_schema(request=InstanceVerbSerializer, responses={202: InstanceOperationSerializer})
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def stop(self, request: Request, pk: str | None = None) -> Response:
        """Power an active instance off: the guest is asked (ACPI), then forced off after a
        deadline (409 `wrong_state` unless it is active and idle)."""
        instance = self.get_object()
        InstanceVerbSerializer(data=request.data).is_valid(raise_exception=True)
        return self._accepted(instance_services.instance_stop(actor=self.actor, instance=instance))

    @extend_schema(request=InstanceRebootSerializer, responses={202: InstanceOperationSerializer})
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def reboot(self, request: Request, pk: str | None = None) -> Response:
        """Reboot an active instance: `soft` asks the guest (ACPI), `hard` resets it (409
        `wrong_state` unless it is active and idle)."""
        instance = self.get_object()
        serializer = InstanceRebootSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        operation = instance_services.instance_reboot(
            actor=self.actor, instance=instance, reboot_type=serializer.validated_data["type"]
        )
        return self._accepted(operation)

    @extend_schema(request=InstanceRebuildSerializer, responses={202: InstanceOperationSerializer})
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def rebuild(self, request: Request, pk: str | None = None) -> Response:
        """Rebuild an active or stopped instance from an image: a fresh root disk on it,
        the same id, name, address and MAC (409 `wrong_state` unless it is active or stopped
        and idle). The old root disk is wiped."""
        instance = self.get_object()
        serializer = InstanceRebuildSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        tenant = self.tenant_context.tenant
        found = image_selectors.image_find(tenant, serializer.validated_data["image"])
        if found is None:
            raise InvalidRequest("No such image.", code="unknown_image")
        operation = instance_services.instance_rebuild(
            actor=self.actor, instance=instance, image=found
        )
        return self._accepted(operation)

    @extend_schema(
        request=InstanceSnapshotSerializer,
        responses={202: InstanceSnapshotAcceptedSerializer},
        parameters=[IDEMPOTENCY_KEY],
    )
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def snapshot(self, request: Request, pk: str | None = None) -> Response:
        """Save the root disk of an active or stopped instance as a new private image
        (`saving`, then `active`; counted in the `images` quota). A running guest is powered
        off cleanly for the copy and booted again. Honours Idempotency-Key."""
        instance = self.get_object()
        return idempotent(request, lambda: self._snapshot(request, instance))

    def _snapshot(self, request: Request, instance: Instance) -> Response:
        serializer = InstanceSnapshotSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        image, operation = instance_services.instance_snapshot(
            actor=self.actor, instance=instance, name=serializer.validated_data["name"]
        )
        body = {
            "image": ImageSerializer(image).data,
            "operation": OperationSerializer(operation).data,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=InstanceResizeSerializer, responses={202: InstanceOperationSerializer})
    @action(detail=True, methods=["post"], filterset_class=None, pagination_class=None)
    def resize(self, request: Request, pk: str | None = None) -> Response:
        """Resize to another flavor on the same host, from active or stopped: the extra
        capacity is claimed first (409 `no_valid_host`, 403 quota); the disk cannot shrink
        (400 `flavor_disk_smaller`). Ends in `verify_resize`: confirm or revert."""
        instance = self.get_object()
        serializer = InstanceResizeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        flavor = self._flavor(serializer.validated_data["flavor"])
        operation = resize_services.instance_resize(
            actor=self.actor, instance=instance, flavor=flavor
        )
        return self._accepted(operation)

    @extend_schema(request=InstanceVerbSerializer, responses={200: InstanceSerializer})
    @action(
        detail=True,
        methods=["post"],
        url_path="confirm-resize",
        filterset_class=None,
        pagination_class=None,
    )
    def confirm_resize(self, request: Request, pk: str | None = None) -> Response:
        """Keep the new flavor: the old capacity is released (409 `wrong_state` unless the
        instance is in verify_resize)."""
        instance = self.get_object()
        InstanceVerbSerializer(data=request.data).is_valid(raise_exception=True)
        resize_services.instance_confirm_resize(actor=self.actor, instance=instance)
        return Response(InstanceSerializer(self.get_queryset().get(pk=instance.pk)).data)

    @extend_schema(request=InstanceVerbSerializer, responses={202: InstanceOperationSerializer})
    @action(
        detail=True,
        methods=["post"],
        url_path="revert-resize",
        filterset_class=None,
        pagination_class=None,
    )
    def revert_resize(self, request: Request, pk: str | None = None) -> Response:
        """Go back to the old flavor (the disk stays grown; 409 `wrong_state` unless the
        instance is in verify_resize)."""
        instance = self.get_object()
        InstanceVerbSerializer(data=request.data).is_valid(raise_exception=True)
        return self._accepted(
            resize_services.instance_revert_resize(actor=self.actor, instance=instance)
        )

    @extend_schema(responses={200: ConsoleSerializer})
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def console(self, request: Request, pk: str | None = None) -> Response:
        """The tail of the instance's serial console (64 KiB at most) as the host's worker
        last captured it, and when (`captured_at`, null before the first capture;
        `age_seconds`). An older capture asks the worker for a new one and answers at once:
        read again in a few seconds."""
        instance = self.get_object()
        capture = selectors.instance_console(instance)
        console_services.console_request_refresh(instance, capture)
        return Response(
            {
                "output": capture.output,
                "captured_at": capture.captured_at,
                "age_seconds": capture.age_seconds(),
            }
        )

    @extend_schema(responses=OperationSerializer(many=True))
    @action(detail=True, methods=["get"], filterset_class=None, pagination_class=None)
    def operations(self, request: Request, pk: str | None = None) -> Response:
        instance = self.get_object()
        history = operation_selectors.operation_history(self.tenant_context.tenant, instance.pk)
        return Response(OperationSerializer(history, many=True).data)
