"""Races on a volume being snapshotted, on PostgreSQL over real HTTP (`live_server`), each
request on its own connection: the volume's row lock decides (volumes.services.snapshots)."""

from __future__ import annotations

import concurrent.futures
import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest

from operations.models import Operation
from tests import factories
from tests.support.live_http import post_json
from volumes.models import Volume, VolumeSnapshot

PARALLEL = 6


def delete(url: str, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 - our live_server
        url, method="DELETE", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.django_db(transaction=True)
def test_parallel_snapshots_of_one_volume_let_exactly_one_win(live_server, cloud):
    volume = factories.available_volume(cloud.tenant, volume_type=factories.volume_type("std"))
    barrier = threading.Barrier(PARALLEL)

    def one(n: int) -> tuple[int, Any]:
        barrier.wait(timeout=30)
        return post_json(f"{live_server.url}/api/v1/volume-snapshots", cloud.member.token,
                         {"volume": str(volume.pk), "name": f"s{n}"})  # fmt: skip

    with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        results = list(pool.map(one, range(PARALLEL)))
    statuses = [status for status, _ in results]
    assert (statuses.count(202), statuses.count(409)) == (1, PARALLEL - 1), results
    assert {body["error"]["code"] for status, body in results if status == 409} == {
        "snapshot_in_progress"
    }
    assert VolumeSnapshot.objects.count() == 1
    assert Operation.objects.filter(action="volume_snapshot.create").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_snapshot_and_a_delete_of_one_volume_never_both_win(live_server, cloud):
    volume_type = factories.volume_type("std")
    url = f"{live_server.url}/api/v1"
    for _round in range(4):
        volume = factories.available_volume(cloud.tenant, volume_type=volume_type)
        barrier = threading.Barrier(2)

        def snapshot(volume_id: str, barrier: threading.Barrier = barrier) -> tuple[int, Any]:
            barrier.wait(timeout=30)
            return post_json(f"{url}/volume-snapshots", cloud.member.token,
                             {"volume": volume_id, "name": "s"})  # fmt: skip

        def remove(volume_id: str, barrier: threading.Barrier = barrier) -> tuple[int, Any]:
            barrier.wait(timeout=30)
            return delete(f"{url}/volumes/{volume_id}", cloud.member.token)

        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(snapshot, str(volume.pk)), pool.submit(remove, str(volume.pk))]
            taken, deleted = (future.result() for future in futures)
        assert sorted((taken[0], deleted[0])) == [202, 409], (taken, deleted)
        status = Volume.objects.get(pk=volume.pk).status
        if taken[0] == 202:  # the snapshot won: the volume stays
            assert deleted[1]["error"]["code"] == "snapshot_in_progress"
            assert status == "available"
        else:  # the delete won: nothing was snapshotted
            assert taken[1]["error"]["code"] == "wrong_state"
            assert status == "deleting"
            assert not VolumeSnapshot.objects.filter(volume=volume).exists()
