"""Forms of the instance and keypair pages. Every choice is built from the tenant's own
objects (tenant-scoped selectors), so a foreign id is simply not a valid choice."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from compute import selectors as compute_selectors
from compute.models import Flavor, KeyPair
from images import selectors as image_selectors
from images.models import Image
from network import selectors as network_selectors
from network.models import Network, SecurityGroup
from tenants.models import Tenant
from volumes import selectors as volume_selectors
from volumes.models import Volume


class InstanceCreateForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=63,
        help_text=_("Letters, digits and hyphens; it becomes the guest's host name."),
    )
    flavor = forms.ModelChoiceField(
        label=_("Flavor"),
        queryset=Flavor.objects.none(),
        empty_label=None,
        help_text=_("The virtual CPUs, memory and disk of the instance."),
    )
    image = forms.ModelChoiceField(
        label=_("Image"),
        queryset=Image.objects.none(),
        empty_label=None,
        help_text=_("The system it boots."),
    )
    keypair = forms.ModelChoiceField(
        label=_("SSH key"),
        queryset=KeyPair.objects.none(),
        required=False,
        empty_label=_("No key"),
        help_text=_("The public key put in the guest for SSH."),
    )
    networks = forms.ModelMultipleChoiceField(
        label=_("Networks"),
        queryset=Network.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("One network interface on each, in this order. None: the default network."),
    )
    security_groups = forms.ModelMultipleChoiceField(
        label=_("Security groups"),
        queryset=SecurityGroup.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The firewall rules of its interfaces. None: your default group."),
    )
    user_data = forms.CharField(
        label=_("User data"),
        required=False,
        strip=False,
        max_length=65536,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text=_("Given to cloud-init at first boot, e.g. a #cloud-config document."),
    )

    def __init__(self, tenant: Tenant, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fields: Any = self.fields
        fields["flavor"].queryset = compute_selectors.flavor_list(tenant).order_by(
            "vcpus", "memory_mb", "name"
        )
        fields["flavor"].label_from_instance = lambda f: (
            _("%(name)s — %(vcpus)s vCPU, %(memory)s MiB, %(disk)s GiB")
            % {"name": f.name, "vcpus": f.vcpus, "memory": f.memory_mb, "disk": f.disk_gb}
        )
        fields["image"].queryset = (
            image_selectors.image_list(tenant).filter(status=Image.Status.ACTIVE).order_by("name")
        )
        fields["keypair"].queryset = compute_selectors.keypair_list(tenant).order_by("name")
        fields["networks"].queryset = network_selectors.network_list(tenant).order_by("name")
        fields["security_groups"].queryset = network_selectors.security_group_list(tenant).order_by(
            "name"
        )


class RebootForm(forms.Form):
    type = forms.ChoiceField(
        label=_("Reboot"), choices=[("soft", _("soft")), ("hard", _("hard"))], initial="soft"
    )


class SnapshotForm(forms.Form):
    name = forms.CharField(label=_("Snapshot name"), max_length=128)


class ResizeForm(forms.Form):
    flavor = forms.ModelChoiceField(
        label=_("New flavor"), queryset=Flavor.objects.none(), empty_label=None
    )

    def __init__(self, tenant: Tenant, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["flavor"]
        field.queryset = compute_selectors.flavor_list(tenant).order_by("vcpus", "memory_mb")


class RebuildForm(forms.Form):
    image = forms.ModelChoiceField(
        label=_("Image"), queryset=Image.objects.none(), empty_label=None
    )

    def __init__(self, tenant: Tenant, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["image"]
        field.queryset = (
            image_selectors.image_list(tenant).filter(status=Image.Status.ACTIVE).order_by("name")
        )


class KeypairImportForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=64)
    public_key = forms.CharField(
        label=_("Public key"),
        max_length=16384,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text=_("One line, such as the content of ~/.ssh/id_ed25519.pub."),
    )


class KeypairGenerateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=64)


class VolumeAttachForm(forms.Form):
    """An available volume of the tenant's (the service refuses one on another host)."""

    volume = forms.ModelChoiceField(
        label=_("Volume"), queryset=Volume.objects.none(), empty_label=None
    )

    def __init__(self, tenant: Tenant, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["volume"]
        field.queryset = volume_selectors.volume_list(tenant).filter(status="available")


class InterfaceAttachForm(forms.Form):
    network = forms.ModelChoiceField(
        label=_("Network"), queryset=Network.objects.none(), empty_label=None
    )

    def __init__(self, tenant: Tenant, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field: Any = self.fields["network"]
        field.queryset = network_selectors.network_list(tenant).order_by("name")
