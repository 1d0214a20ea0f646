"""Parallel attaches of one volume to several instances on PostgreSQL, over real HTTP
(`live_server`), each request on its own connection: the volume's row lock and the
conditional update of its status let exactly one win; the unique constraint on active
attachments stands behind them (issue 11, "Done means")."""

from __future__ import annotations

import concurrent.futures
import threading

import pytest

from operations.models import Operation
from tests import factories
from tests.support.live_http import post_json
from volumes.models import Volume, VolumeAttachment

INSTANCES = 6


@pytest.mark.django_db(transaction=True)
def test_parallel_attaches_of_one_volume_let_exactly_one_win(live_server, cloud):
    volume_type = factories.volume_type("standard")
    instances = []
    for n in range(INSTANCES):
        instance, operation = factories.instance(
            cloud.tenant, flavor=cloud.flavor, image=cloud.image, name=f"web-{n}"
        )
        factories.run(operation)
        instances.append(str(instance.pk))
    volume = factories.available_volume(cloud.tenant, volume_type=volume_type)
    barrier = threading.Barrier(INSTANCES)

    def one(instance_id: str) -> tuple[int, dict]:
        barrier.wait(timeout=30)
        url = f"{live_server.url}/api/v1/instances/{instance_id}/volumes"
        return post_json(url, cloud.member.token, {"volume": str(volume.pk)})

    with concurrent.futures.ThreadPoolExecutor(max_workers=INSTANCES) as pool:
        results = list(pool.map(one, instances))
    statuses = [status for status, _ in results]
    assert statuses.count(202) == 1, results
    assert statuses.count(409) == INSTANCES - 1, results
    codes = {body["error"]["code"] for status, body in results if status == 409}
    assert codes == {"volume_in_use"}
    winner = next(body for status, body in results if status == 202)
    attachment = VolumeAttachment.objects.get()
    assert str(attachment.instance_id) == winner["volume"]["attachment"]["instance"]
    assert Volume.objects.get(pk=volume.pk).status == "attaching"
    assert Operation.objects.filter(action="instance.attach_volume").count() == 1
