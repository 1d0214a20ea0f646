"""Addresses on the tenant network (network.services.ipam), as instances come and go."""

from __future__ import annotations

import pytest

from operations.worker import run_operation
from tests.support.instance_api import create


@pytest.mark.django_db
def test_a_freed_address_rests_before_it_is_handed_out_again(cloud):
    first = create(cloud.client, cloud.image).json()
    run_operation(first["operation"]["id"])
    deleted = cloud.client.delete(f"/api/v1/instances/{first['instance']['id']}").json()
    run_operation(deleted["operation"]["id"])
    second = create(cloud.client, cloud.image, name="web-2").json()
    assert second["instance"]["ip"] != first["instance"]["ip"]
