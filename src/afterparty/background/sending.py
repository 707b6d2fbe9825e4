"""Sending background tasks to Celery workers from ``run``: each is recorded ``queued`` (fenced,
under its lease) before its message leaves, and the message names no database URL."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from afterparty.errors import ConfigError
from afterparty.lease import lease_if_free
from afterparty.results import TaskOutcome
from afterparty.session import Session, utc_now
from afterparty.states import Action, Actor, State

if TYPE_CHECKING:
    from celery import Celery

    from afterparty.config import Settings
    from afterparty.definition import Task
    from afterparty.loader import TaskFile

#: The name the workers know the task by (afterparty.contrib.celery registers it).
TASK_NAME = "afterparty.run_background_task"


@dataclass(frozen=True)
class Message:
    """What a worker needs to find the environment and the task: never the database URL (a
    password has no business in a broker). The worker reaches the records through its own
    configuration: ``environment_id`` proves that they are the same records, and ``place`` that
    they are the same database, not a copy of it (``Dialect.place``)."""

    environment_id: str
    tasks_dir: str
    environment: str
    table_prefix: str
    version: str
    release: str | None = None
    place: str = ""  # empty in a message an afterparty before 0.2 sent


class Sender:
    """Sends the background tasks of one run: each is recorded ``queued`` (fenced, committed)
    before its message leaves, so a worker that gets it at once finds it queued."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._app: Celery | None = None

    def check_configured(self) -> None:
        """ConfigError, before anything runs, when the Celery app cannot be found."""
        from afterparty.backends.url import parse_url
        from afterparty.errors import ConfigError

        settings = self.session.settings
        if parse_url(settings.database_url).redacted != self.session.url.redacted:
            raise ConfigError(
                "a task has @task(background=True), but this command keeps records through the "
                "application's database connection, which a worker cannot be sent: run "
                "`afterparty run` with the database URL (see README \"On Celery workers\")")
        try:
            import celery  # noqa: F401
        except ModuleNotFoundError as exc:  # celery itself
            raise ConfigError(f"a task has @task(background=True) but {exc.name} is not installed: "
                              "pip install 'afterparty[celery]'") from None
        self._app = load_app(settings)

    def send(self, task_file: TaskFile, task: Task, before: State) -> State | TaskOutcome:
        """Record the task (read in state ``before``) queued and send it: QUEUED. RUNNING when
        a worker holds its lease (it took the message between this run's read of the records and
        now: nothing is written or sent). When sending fails, the task is recorded failed with the error (the
        next ``run`` sends it again) and that outcome is returned."""
        from afterparty.backends.url import redact

        if self._app is None:
            self.check_configured()
        assert self._app is not None
        session, recorder = self.session, self.session.recorder
        session.lock.check()
        fence = session.lock.fence
        place = session.database.dialect.place(session.database)
        # Holding the task's lease while the record says queued: no worker is inside an
        # attempt then, so a worker's `running` is never overwritten by `queued`.
        lease = lease_if_free(session, task_file.version)
        if lease is None:
            return State.RUNNING
        try:
            with recorder.writing(fence):
                attempt_id = recorder.record_decision(
                    task_file.version, task_file.name, task.description, Action.ENQUEUE, before,
                    State.QUEUED, session.origin(), utc_now(), "sent to a Celery worker", fence,
                    Actor.RUNNER)
        finally:
            lease.release()
        try:
            send(self._app, message_for(session.settings, task_file.version,
                                        session.origin().release_id, recorder.environment_id(),
                                        place))
        except Exception as exc:  # whatever the broker's client raises: the deploy goes on
            error = (f"could not send it to a Celery worker ({type(exc).__name__}: "
                     f"{redact(str(exc))}): check the broker; the next run sends it again")
            with recorder.writing(fence):
                recorder.record_finish(attempt_id, task_file.version, State.FAILED, utc_now(), 0.0,
                                       error, "", fence, expected=State.QUEUED)
            return TaskOutcome(task_file.version, task_file.name, State.FAILED, 0.0, error)
        return State.QUEUED


def message_for(settings: Settings, version: str, release: str | None,
                environment_id: str, place: str = "") -> Message:
    """The message of one task: its tasks directory relative to the project (a worker's checkout
    may live elsewhere), unless it lies outside it."""
    tasks_dir = os.path.abspath(settings.tasks_dir)
    root = os.path.abspath(settings.project_root)
    if os.path.commonpath([tasks_dir, root]) == root:
        tasks_dir = os.path.relpath(tasks_dir, root)
    return Message(environment_id=environment_id, tasks_dir=tasks_dir,
                   environment=settings.environment, table_prefix=settings.table_prefix,
                   version=version, release=release, place=place)


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
