"""Platform housekeeping tasks (control queue)."""

from celery import shared_task
from iaas.api.idempotency import purge_expired


@shared_task(name="iaas.purge_idempotency_records")
def purge_idempotency_records() -> int:
    """Forget Idempotency-Key answers older than IDEMPOTENCY_TTL."""
    return purge_expired()


@shared_task(name="iaas.audit_checkpoint")
def audit_checkpoint() -> int | None:
    """Sign the audit chain's head into the checkpoint file (None: it has not moved)."""
    from iaas.audit.checkpoints import checkpoint_write

    checkpoint = checkpoint_write()
    return checkpoint.seq if checkpoint else None


@shared_task(name="iaas.summarise_refused_reads")
def summarise_refused_reads() -> int:
    """One audit event per caller for the last minutes' refused reads."""
    from iaas.audit import refused_reads

    return refused_reads.summarise()
