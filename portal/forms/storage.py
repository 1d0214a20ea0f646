"""Forms of the storage pages (images, volumes, volume snapshots): the shape of what a page
sends, as the API's serializers check it; the services decide the rest."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from images.models import Image

MAX_VOLUME_GB = 65536  # volumes.api.volumes.MAX_SIZE_GB


class ImageCreateForm(forms.Form):
    """The image record (name and disk format); its file is sent to the API by upload.js."""

    name = forms.CharField(
        label=_("Name"),
        max_length=128,
        help_text=_("Letters, digits, spaces and . _ : + ( ) @ -"),
    )
    disk_format = forms.ChoiceField(
        label=_("Disk format"),
        choices=[(Image.DiskFormat.QCOW2, "qcow2"), (Image.DiskFormat.RAW, "raw")],
        initial=Image.DiskFormat.QCOW2,
        help_text=_("The format of the file you will upload: it is checked on arrival."),
    )


class VolumeCreateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=64)
    description = forms.CharField(label=_("Description"), max_length=255, required=False)
    size_gb = forms.IntegerField(label=_("Size (GiB)"), min_value=1, max_value=MAX_VOLUME_GB)
    volume_type = forms.ChoiceField(label=_("Volume type"))
    image = forms.ChoiceField(
        label=_("Source image"),
        required=False,
        help_text=_("Optional: an image copied into the volume."),
    )
    snapshot = forms.ChoiceField(
        label=_("Source snapshot"),
        required=False,
        help_text=_("Optional: a volume snapshot copied into the volume (not with an image)."),
    )

    def __init__(
        self,
        *args: Any,
        volume_types: list[tuple[str, str]],
        images: list[tuple[str, str]],
        snapshots: list[tuple[str, str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        none: list[tuple[str, Any]] = [("", _("None (an empty volume)"))]
        for name, choices in (
            ("volume_type", volume_types),
            ("image", none + images),
            ("snapshot", none + snapshots),
        ):
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = choices

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("image") and data.get("snapshot"):
            raise forms.ValidationError(_("Choose an image or a snapshot, not both."))
        return data


class VolumeExtendForm(forms.Form):
    size_gb = forms.IntegerField(
        label=_("New size (GiB)"),
        min_value=1,
        max_value=MAX_VOLUME_GB,
        help_text=_("Larger than the current size: a volume only grows."),
    )


class VolumeSnapshotCreateForm(forms.Form):
    name = forms.CharField(label=_("Snapshot name"), max_length=64)
    description = forms.CharField(label=_("Description"), max_length=255, required=False)
