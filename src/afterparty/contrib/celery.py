"""Celery as the engine of ``@task(background=True)``: the task a worker runs, and sending it.

A worker registers the task by importing this module: ``Celery(..., include=
["afterparty.contrib.celery"])`` (or ``app.conf.include``). ``afterparty run`` finds the app
from the ``celery_app`` setting (``module:attribute``) and sends the task by its name, so the
deploy never needs this module's task registered in its own process.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from celery import shared_task

from afterparty.errors import ConfigError

if TYPE_CHECKING:
    from celery import Celery

    from afterparty.background import Message
    from afterparty.config import Settings

TASK_NAME = "afterparty.run_background_task"


# acks_late with reject_on_worker_lost: a worker that dies mid-task leaves the message to be
# delivered again; the task's lease makes a second delivery do nothing while the first runs,
# and the record makes one after it is done do nothing.
@shared_task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_background_task(**message: Any) -> str:
    """Run one background task of one environment, exactly once (see afterparty.background)."""
    from afterparty.background import Message, run_on_worker

    return run_on_worker(Message(**message))


def load_app(settings: Settings) -> Celery:
    """The user's Celery app, from ``celery_app = "module:attribute"``; ConfigError saying what
    to set when it is missing or cannot be imported."""
    from celery import Celery

    spec = settings.celery_app
    if not spec:
        raise ConfigError(
            "a task has @task(background=True), which runs on a Celery worker: set celery_app = "
            "\"module:attribute\" in [tool.afterparty] (or AFTERPARTY_CELERY_APP) to your Celery app")
    module_name, _, attribute = spec.partition(":")
    if settings.project_root not in sys.path:
        sys.path.insert(0, settings.project_root)
    import importlib

    try:
        app = getattr(importlib.import_module(module_name), attribute or "app")
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load the Celery app {spec!r} (celery_app): {exc}") from None
    if not isinstance(app, Celery):
        raise ConfigError(f"celery_app {spec!r} is a {type(app).__name__}, not a Celery app")
    return app


def send(app: Celery, message: Message) -> str:
    """Send a task's message to the workers; returns the Celery task id."""
    from dataclasses import asdict

    result = app.send_task(TASK_NAME, kwargs=asdict(message))
    return str(result.id)
