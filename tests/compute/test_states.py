"""The instance's lifecycle (compute.states): every verb goes through one guard, which lets a
verb start only from its allowed statuses on an idle instance, and refuses anything else
with the same 409 — changing nothing."""

from __future__ import annotations

from typing import Any

import pytest

from compute.models import Instance
from compute.services.flavors import flavor_create
from compute.states import INSTANCE_LIFECYCLE, InstanceStatus, TaskState
from iaas.audit import Actor
from iaas.errors import ConflictError

SYSTEM = Actor.system("tests")
VERBS = sorted(INSTANCE_LIFECYCLE.transitions)


@pytest.fixture
def instance(make_tenant: Any) -> Instance:
    tenant = make_tenant("states")
    flavor = flavor_create(actor=SYSTEM, name="s1", vcpus=1, memory_mb=256, disk_gb=1)
    # The ORM, not instance_create: these tests put the row in every status directly,
    # which no sequence of services could do in a unit test.
    return Instance.objects.create(
        tenant=tenant, name="vm", flavor=flavor, image_id=flavor.pk, vcpus=1, memory_mb=256,
        disk_gb=1, status=InstanceStatus.ACTIVE,
    )  # fmt: skip


def test_every_task_state_of_the_table_is_a_choice_that_fits_its_column() -> None:
    width = Instance._meta.get_field("task_state").max_length
    assert width is not None
    for transition in INSTANCE_LIFECYCLE.transitions.values():
        assert transition.task_state in TaskState.values
        assert transition.allowed <= set(InstanceStatus.values)
    assert all(len(state) <= width for state in TaskState.values)


@pytest.mark.django_db
@pytest.mark.parametrize("verb", VERBS)
def test_a_verb_starts_only_from_its_allowed_statuses(instance: Instance, verb: str) -> None:
    transition = INSTANCE_LIFECYCLE.transitions[verb]
    for status in InstanceStatus.values:
        Instance.objects.filter(pk=instance.pk).update(status=status, task_state=None)
        instance.refresh_from_db()
        if status in transition.allowed:
            INSTANCE_LIFECYCLE.begin(instance, verb)
            assert instance.task_state == transition.task_state
            assert instance.status == (transition.status or status)
        else:
            before = Instance.objects.filter(pk=instance.pk).values().get()
            with pytest.raises(ConflictError) as refused:
                INSTANCE_LIFECYCLE.begin(instance, verb)
            assert refused.value.code == "wrong_state"
            assert refused.value.details == {"status": status, "task_state": None}
            assert f"The instance is {status};" in refused.value.message
            assert Instance.objects.filter(pk=instance.pk).values().get() == before


@pytest.mark.django_db
@pytest.mark.parametrize("verb", VERBS)
def test_no_verb_starts_while_another_runs(instance: Instance, verb: str) -> None:
    transition = INSTANCE_LIFECYCLE.transitions[verb]
    status = sorted(transition.allowed)[0]
    Instance.objects.filter(pk=instance.pk).update(status=status, task_state="rebooting")
    instance.refresh_from_db()
    assert not INSTANCE_LIFECYCLE.allows(instance, verb)
    with pytest.raises(ConflictError) as refused:
        INSTANCE_LIFECYCLE.begin(instance, verb)
    assert refused.value.details == {"status": status, "task_state": "rebooting"}
    assert "(rebooting)" in refused.value.message
    instance.refresh_from_db()
    assert (instance.status, instance.task_state) == (status, "rebooting")


@pytest.mark.django_db
def test_the_guard_decides_on_the_row_not_on_a_stale_copy(instance: Instance) -> None:
    """Two requests read the instance idle; the first takes it, the second is refused even
    though its own copy still says idle (the conditional update sees the row)."""
    stale = Instance.objects.get(pk=instance.pk)
    INSTANCE_LIFECYCLE.begin(instance, "stop")
    assert INSTANCE_LIFECYCLE.allows(stale, "reboot")  # what the stale copy believes
    with pytest.raises(ConflictError):
        INSTANCE_LIFECYCLE.begin(stale, "reboot")
    assert Instance.objects.get(pk=instance.pk).task_state == TaskState.STOPPING
