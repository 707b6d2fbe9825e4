"""Celery as the engine of ``@task(background=True)``: the task a worker registers and runs.

A worker registers it by importing this module: ``Celery(..., include=
["afterparty.contrib.celery"])`` (or ``app.conf.include``). ``afterparty run`` finds the app
from the ``celery_app`` setting (``module:attribute``) and sends the task by its name
(afterparty.background.sending), so the deploy never needs this module in its own process.
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
