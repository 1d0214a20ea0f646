"""What the API asked the control workers to do, and doing it: the network changes a request
queued (network.services.realise sends them when its transaction commits) are recorded as
they are published to the real broker, then run through the Celery tasks' own code
(`Task.apply()`, eager), as a control worker would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import current_app
from celery.signals import before_task_publish
from django.test import TestCase

import network.tasks  # noqa: F401 - registers the network tasks with the Celery app


@contextmanager
def queued() -> Iterator[list[tuple[str, tuple[str, ...]]]]:
    """Inside: the API calls of a test (whose transaction never commits). After: their
    commit-time sends have run against the broker, and the list holds each message
    published, as (task name, args), in order."""
    sent: list[tuple[str, tuple[str, ...]]] = []

    def record(sender: str | None = None, body: Any = None, **_: Any) -> None:
        # Protocol 2: body is (args, kwargs, embed).
        sent.append((str(sender), tuple(body[0])))

    with TestCase.captureOnCommitCallbacks() as callbacks:
        yield sent
    before_task_publish.connect(record, weak=False)
    try:
        for callback in callbacks:
            callback()
    finally:
        before_task_publish.disconnect(record)
    # realise's send logs and swallows a broker error (the reconciler catches up): say so.
    assert sent or not callbacks, "nothing was published: is CELERY_BROKER_URL's Redis up?"


def run(sent: list[tuple[str, tuple[str, ...]]]) -> list[Any]:
    """Run each queued task as a control worker would; their results (a task that failed
    raises here)."""
    results = []
    for name, args in sent:
        result = current_app.tasks[name].apply(args=args, throw=True)
        results.append(result.get())
    return results


def converge(api_call: Any) -> tuple[Any, list[tuple[str, tuple[str, ...]]]]:
    """`api_call()` (an API request), then what it queued, run: (its answer, the tasks)."""
    with queued() as sent:
        answer = api_call()
    run(sent)
    return answer, sent
