"""What a long task keeps while it runs: its checkpoint, its batches and its progress."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from afterparty.errors import AfterpartyError, DatabaseError
from afterparty.records import LONG_TEXT_LIMIT, Progress
from afterparty.session import utc_now
from afterparty.states import Action

if TYPE_CHECKING:
    from afterparty.backends.base import Database
    from afterparty.definition import Throttle
    from afterparty.interruptions import Interruptions
    from afterparty.recorder import Recorder
    from afterparty.records import Fence
    from afterparty.session import Session

# ``ctx.batch()`` without ``checkpoint=``: the checkpoint stays as it is (None is a value).
KEEP_CHECKPOINT: Any = object()

# Progress is written at most this often (a task may report every row); the last report of
# an attempt is always kept, with its outcome.
PROGRESS_EVERY = 0.25
# A person's request (pause, cancel) is looked for at most this often, at a batch's end or a
# progress report: a backfill of short batches pays one read a half second, not one a batch.
REQUESTS_EVERY = 0.5
_UNREAD = "\x00unread"
# What ctx.progress takes without asking further (_refuse_unless_number asks the rest).
_NUMBERS = frozenset((int, float))


class StopAsked(BaseException):
    """A person asked the running task to stop (``pause``, ``cancel``): raised at its next batch
    boundary or progress report, after the batch committed. A BaseException, as SystemExit is,
    so that a task's ``except Exception`` does not swallow it."""

    def __init__(self, action: Action) -> None:
        self.action = action
        super().__init__(f"{action} asked by a person")


class LongTaskError(AfterpartyError):
    """A long task used its checkpoint, batches or progress in a way that cannot work."""


class Checkpoint:
    """``ctx.checkpoint``: a small JSON value per task and environment, kept across attempts."""

    def __init__(self, keeper: LongTask) -> None:
        self._keeper = keeper

    def get(self, default: Any = None) -> Any:
        """The last committed checkpoint, or ``default`` when there is none."""
        text = self._keeper.checkpoint_text
        return default if text is None else json.loads(text)

    def save(self, value: Any) -> None:
        """Keep ``value``. In a batch it commits with the batch's work; in an ``atomic=False``
        task outside a batch it commits at once; in an atomic task it commits with the task."""
        self._keeper.save_checkpoint(value)


class LongTask:
    """One attempt's checkpoint, batches and progress. The checkpoint is written in the task's
    transaction (a batch's, fenced like every record); progress is written on a second session
    of its own, so that others see it while the task's transaction is still open."""

    def __init__(self, session: Session, version: str, atomic: bool, fence: Fence,
                 interruptions: Interruptions, throttle: Throttle | None = None,
                 report: Callable[[Progress], None] | None = None, worker: str | None = None) -> None:
        self.session = session
        self.version = version
        #: What each batch's commit is guarded by: the runner's lock, or the worker's lease.
        self.fence = fence
        self.atomic = atomic
        self.interruptions = interruptions
        self.throttle = throttle
        self.report = report
        self.worker = worker
        self._checkpoint_text: str | None = _UNREAD
        self.latest: Progress | None = None
        self.in_batch = False
        self._written: Progress | None = None
        self._written_at = 0.0
        self._side: Database | None = None
        self._side_recorder: Recorder | None = None
        self._asked_at = time.monotonic()

    # --- checkpoint and batches (the task's own session) ------------------------------

    @property
    def checkpoint_text(self) -> str | None:
        """The checkpoint as last committed (read when first asked for: most tasks never do)."""
        if self._checkpoint_text is _UNREAD:
            self._checkpoint_text = self.session.recorder.read_checkpoints(self.version).get(self.version)
        return self._checkpoint_text

    def save_checkpoint(self, value: Any) -> None:
        text = _as_json(value)
        recorder = self.session.recorder
        if self.atomic or self.in_batch:
            recorder.write_checkpoint(self.version, text, utc_now())
        else:
            with self._transaction():
                recorder.write_checkpoint(self.version, text, utc_now())
        self._checkpoint_text = text

    @contextlib.contextmanager
    def batch(self, ctx: object, checkpoint: Any = KEEP_CHECKPOINT,
              pause: float | None = None) -> Iterator[None]:
        """``ctx.batch``: the block's ``ctx.db`` work and the checkpoint commit together."""
        if self.atomic:
            raise LongTaskError(
                "ctx.batch() needs @task(atomic=False): an atomic task's work commits once, when "
                "it returns, so a batch could not commit on its own")
        if self.in_batch:
            raise LongTaskError("ctx.batch() blocks do not nest: end one before the next begins")
        text = None if checkpoint is KEEP_CHECKPOINT else _as_json(checkpoint)
        if self.throttle is not None:
            self._wait_while_throttled(ctx)
        # What recorder.writing() does, spelled out: a backfill runs thousands of these.
        database, recorder = self.session.database, self.session.recorder
        fence = self.fence
        with database.connection.transaction_amid_autocommit():
            database.begin()
            self.in_batch = True
            try:
                yield
                # Only while the lock (or the lease) is still ours.
                if text is None:
                    recorder.commit(fence)
                else:
                    recorder.commit_with_checkpoint(fence, self.version, text, utc_now())
            except BaseException:
                database.rollback()
                raise
            finally:
                self.in_batch = False
        if text is not None:
            self._checkpoint_text = text
        self.stop_if_asked()
        if pause:
            self.interruptions.sleep(pause)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """A transaction in an ``atomic=False`` task, committed only while the lock is ours."""
        with self.session.database.connection.transaction_amid_autocommit(), \
                self.session.recorder.writing(self.fence):
            yield

    def _wait_while_throttled(self, ctx: object) -> None:
        """Before a batch: wait as long as the task's ``throttle`` asks."""
        assert self.throttle is not None
        while True:
            seconds = self.throttle(ctx)
            if not seconds or seconds <= 0:
                return
            self.interruptions.sleep(float(seconds))

    # --- progress (a session of its own) ----------------------------------------------

    def progress(self, done: float, total: float | None = None, note: str | None = None) -> None:
        """``ctx.progress``: kept at once for others to see (at most a few times a second)."""
        if type(done) not in _NUMBERS:
            _refuse_unless_number("done", done)
        if total is not None and type(total) not in _NUMBERS:
            _refuse_unless_number("total", total)
        if note is not None and not isinstance(note, str):
            raise LongTaskError(f"ctx.progress(note=...) takes a string, not {note!r}")
        now = utc_now()
        since, start = ((self.latest.rate_since, self.latest.rate_from) if self.latest is not None
                        else (now, float(done)))
        self.latest = Progress(self.version, float(done), None if total is None else float(total),
                               note, since, start, now, self.worker)
        if self.report is not None:
            self.report(self.latest)
        finished = total is not None and done >= total
        if finished or time.monotonic() - self._written_at >= PROGRESS_EVERY:
            self._write_aside()
        if not self.in_batch:
            self.stop_if_asked()

    def stop_if_asked(self) -> None:
        """StopAsked when a person asked this task to pause or cancel (looked for on the side
        session, which sees what others committed even inside the task's own transaction)."""
        if time.monotonic() - self._asked_at < REQUESTS_EVERY:
            return
        self._asked_at = time.monotonic()
        try:
            asked = self._side_session().read_request(self.version)
        except DatabaseError:
            return
        if asked is not None:
            raise StopAsked(asked)

    def _side_session(self) -> Recorder:
        if self._side_recorder is None:
            from afterparty.recorder import Recorder

            database = self.session.database
            self._side = database.dialect.side_session(database)
            self._side_recorder = Recorder(self._side, self.session.recorder.prefix)
        return self._side_recorder

    def _write_aside(self) -> None:
        """Write the latest report on the side session; if that cannot be done now (SQLite's one
        writer is busy with the task's transaction), the next report or the outcome keeps it."""
        if self.latest is None or self.latest is self._written:
            return
        self._written_at = time.monotonic()
        try:
            self._side_session().write_progress(self.latest)
        except DatabaseError:
            return
        self._written = self.latest

    def keep_latest(self) -> None:
        """With the attempt's outcome, in its transaction: the last report, if not written yet."""
        if self.latest is not None and self.latest is not self._written:
            self.session.recorder.write_progress(self.latest)
            self._written = self.latest

    def close(self) -> None:
        if self._side is not None:
            self._side.close()
            self._side = self._side_recorder = None


def _refuse_unless_number(name: str, value: object) -> None:
    """LongTaskError unless ``value`` is an int or a float (of a subclass too), bool aside."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LongTaskError(f"ctx.progress({name}=...) takes a number, not {value!r}")


def _as_json(value: Any) -> str:
    try:
        # An int (a backfill's usual cursor) as json.dumps writes it, without its machinery.
        text = str(value) if type(value) is int else json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise LongTaskError(f"a checkpoint is a JSON value (numbers, strings, lists, dicts): {exc}") \
            from None
    if len(text) > LONG_TEXT_LIMIT:
        raise LongTaskError(f"a checkpoint is kept small (at most {LONG_TEXT_LIMIT} characters of "
                            f"JSON, this one has {len(text)}): keep a cursor, not the data")
    return text
