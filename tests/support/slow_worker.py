"""A Celery worker for fault tests: `python -m tests.support.slow_worker worker -Q …`.

With ANDROMEDE_TEST_SLOW_DEFINE_SECONDS set, the build's `define` step sleeps that long
before it defines the domain, so a test can kill the worker in the middle of a create.
Only this test-support module honours the variable: production code paths never read it.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iaas.settings")
    import django

    django.setup()
    import compute.worker.steps
    from iaas.celery import app

    delay = float(os.environ.get("ANDROMEDE_TEST_SLOW_DEFINE_SECONDS", "0") or 0)
    if delay:
        original = compute.worker.steps.domain_spec

        def slow_domain_spec(*args: Any, **kwargs: Any) -> Any:
            time.sleep(delay)  # the test kills the worker here (SIGKILL)
            return original(*args, **kwargs)

        compute.worker.steps.domain_spec = slow_domain_spec
    app.worker_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
