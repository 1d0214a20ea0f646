"""Platform housekeeping tasks (control queue)."""

from celery import shared_task
from iaas.api.idempotency import purge_expired


@shared_task(name="iaas.purge_idempotency_records")
def purge_idempotency_records() -> int:
    """Forget Idempotency-Key answers older than IDEMPOTENCY_TTL."""
    return purge_expired()
