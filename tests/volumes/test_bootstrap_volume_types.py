"""`manage.py bootstrap_volume_types` (run by `make run`): the default volume type exists
without the operator doing anything, so a tenant's first volume needs no type; run again it
changes nothing, and leaves a type the operator changed as it is."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from iaas.models import AuditEvent
from volumes.models import VolumeType

pytestmark = pytest.mark.django_db
BODY = {"name": "d", "size_gb": 1}


def bootstrap() -> str:
    out = io.StringIO()
    call_command("bootstrap_volume_types", stdout=out)
    return out.getvalue()


def test_make_run_declares_the_default_type_once(cloud, settings):
    assert settings.VOLUME_DEFAULT_TYPE == "standard"
    assert cloud.client.post("/api/v1/volumes", BODY, format="json").status_code == 400
    assert "declared now" in bootstrap()
    declared = VolumeType.objects.get()
    assert (declared.name, declared.backend, declared.encrypted, declared.is_public) == (
        "standard", "dir", False, True,
    )  # fmt: skip
    answer = cloud.client.post("/api/v1/volumes", BODY, format="json")
    assert answer.status_code == 202, answer.content
    assert answer.json()["volume"]["volume_type"] == "standard"

    VolumeType.objects.filter(pk=declared.pk).update(max_size_gb=7)  # an operator's choice
    assert "declared now" not in bootstrap()
    assert list(VolumeType.objects.values_list("name", "max_size_gb")) == [("standard", 7)]
    assert AuditEvent.objects.filter(action="volume_type.create").count() == 1
