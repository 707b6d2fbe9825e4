"""Celery as the engine of ``@task(background=True)``: the task a worker registers and runs;
and ``afterparty tick`` as a Celery beat entry.

A worker registers them by importing this module: ``Celery(..., include=
["afterparty.contrib.celery"])`` (or ``app.conf.include``). ``afterparty run`` finds the app
from the ``celery_app`` setting (``module:attribute``) and sends the task by its name
(afterparty.background.sending), so the deploy never needs this module in its own process.
``app.conf.beat_schedule = tick_schedule()`` has beat send the tick every minute.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from afterparty.background.sending import TASK_NAME


# acks_late with reject_on_worker_lost: a worker that dies mid-task leaves the message to be
# delivered again; the task's lease makes a second delivery do nothing while the first runs,
# and the record makes one after it is done do nothing.
@shared_task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_background_task(**message: Any) -> str:
    """Run one background task of one environment, exactly once (afterparty.background.worker)."""
    from afterparty.background.sending import Message
    from afterparty.background.worker import run_on_worker

    return run_on_worker(Message(**message))


TICK_TASK_NAME = "afterparty.tick"


def tick_schedule(every: float = 60.0) -> dict[str, dict[str, Any]]:
    """The Celery beat entry that runs ``afterparty tick`` every ``every`` seconds; a tick no
    worker took before the next one is due is dropped (the next one does the same)."""
    return {"afterparty-tick": {"task": TICK_TASK_NAME, "schedule": every,
                                "options": {"expires": every}}}


@shared_task(name=TICK_TASK_NAME, ignore_result=True)
def tick() -> str:
    """``afterparty tick`` on a worker, with the worker's settings (its environment variables,
    the ``pyproject.toml`` of its working directory), as the command line would."""
    from afterparty.api import tick as run_tick

    return run_tick().summary()
