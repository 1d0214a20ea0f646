"""Volume tasks on the control queue: thin, they call one service. (Operations on a host's
volumes run through the operation pipeline: volumes.worker.)"""

from __future__ import annotations

from celery import shared_task

from volumes.services.reconciler import reconcile_volume_pools


@shared_task(name="volumes.reconcile")
def reconcile() -> dict[str, int]:
    """Report the storage in every host's volumes pool that no live volume accounts for."""
    return reconcile_volume_pools()
