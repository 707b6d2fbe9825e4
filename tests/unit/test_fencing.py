"""The fence, in-process on a real SQLite file: the environment lock and a task's lease are taken,
checked and given back the same way, and a holder whose epoch has moved on commits nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from afterparty.backends import open_database
from afterparty.backends.url import parse_url
from afterparty.errors import LockLostError
from afterparty.fencing import FencedLock, lease_key
from afterparty.lease import TaskLease
from afterparty.lock import EnvironmentLock
from afterparty.recorder import Recorder
from afterparty.states import Actor, Guard, State

VERSION = "20260101000001"


def holders(path: Path, kind: str) -> tuple[FencedLock, FencedLock, Recorder]:
    """Two holders of the same lock (each on its own connection), and a reader."""
    made = []
    for _ in range(2):
        database = open_database(parse_url(f"sqlite:///{path}"), 5.0)
        recorder = Recorder(database, "unit_")
        made.append(EnvironmentLock(database.lock("unit_"), recorder) if kind == "lock"
                    else TaskLease(database, recorder, VERSION))
    return made[0], made[1], made[1].recorder


@pytest.mark.parametrize("kind", ["lock", "lease"])
def test_one_holder_and_a_stale_fence_commits_nothing(tmp_path: Path, kind: str) -> None:
    first, second, reader = holders(tmp_path / "records.sqlite3", kind)
    assert first.try_take("first")
    assert not second.try_take("second")
    stale = first.fence
    assert stale.guard is (Guard.LOCK if kind == "lock" else Guard.LEASE)
    by = Actor.RUNNER if kind == "lock" else Actor.WORKER
    before = State.PENDING if kind == "lock" else State.QUEUED
    if kind == "lease":  # a worker starts what a run queued
        lock = EnvironmentLock(first.recorder.database.lock("unit_"), first.recorder)
        assert lock.try_take("runner")
        with first.recorder.writing(lock.fence):
            first.recorder.move(VERSION, State.PENDING, State.QUEUED, lock.fence, Actor.RUNNER,
                                name="task")
        lock.release()

    first.release()  # as when its session is killed
    with pytest.raises(LockLostError):
        first.check()
    assert second.try_take("second")
    assert second.fence.epoch == stale.epoch + 1
    with pytest.raises(LockLostError), first.recorder.writing(stale):
        first.recorder.move(VERSION, before, State.RUNNING, stale, by, name="task")
    assert reader.read_states().get(VERSION, State.PENDING) is before
    with second.recorder.writing(second.fence):
        second.recorder.move(VERSION, before, State.RUNNING, second.fence, by, name="task")
    assert reader.read_states()[VERSION] is State.RUNNING


def test_no_fence_before_taking_or_after_giving_back(tmp_path: Path) -> None:
    lease, _, _ = holders(tmp_path / "records.sqlite3", "lease")
    with pytest.raises(LockLostError, match="without holding the task's lease"):
        _ = lease.fence
    assert lease.try_take()
    assert lease.fence.key == lease_key(VERSION)
    lease.release()
    with pytest.raises(LockLostError):
        _ = lease.fence


def test_lease_keys_are_one_to_one_and_fit_a_meta_key() -> None:
    assert lease_key("20260101000001") != lease_key("20260101000002")
    assert len(lease_key("99991231235959")) == 13


def test_a_batch_checkpoint_commits_only_under_the_current_fence(tmp_path: Path) -> None:
    """A batch's checkpoint and its fence check are one statement: the first checkpoint is
    written, later ones replace it, and a holder whose epoch moved on keeps nothing of its batch."""
    first, second, reader = holders(tmp_path / "records.sqlite3", "lock")
    assert first.try_take("first")
    recorder, database = first.recorder, first.recorder.database
    for value in ("1", "2"):
        database.begin()
        recorder.commit_with_checkpoint(first.fence, VERSION, value, "now")
        assert reader.read_checkpoints(VERSION) == {VERSION: value}
    stale = first.fence
    first.release()
    assert second.try_take("second")
    database.begin()
    database.execute("CREATE TABLE batch_work (n INTEGER)")
    with pytest.raises(LockLostError):
        recorder.commit_with_checkpoint(stale, VERSION, "3", "now")
    assert reader.read_checkpoints(VERSION) == {VERSION: "2"}
    assert not database.in_transaction
    assert reader.database.query("SELECT name FROM sqlite_master WHERE name = 'batch_work'") == []


def test_a_batch_checkpoint_under_a_replaced_records_file_commits_nothing(tmp_path: Path) -> None:
    """Under SQLite's file lock, held without a break, a checkpoint is written without reading
    the epoch; once the file under the path is another one, the batch is refused all the same."""
    path = tmp_path / "records.sqlite3"
    first, _, _ = holders(path, "lock")
    assert first.try_take("first")
    recorder, database = first.recorder, first.recorder.database
    database.begin()
    recorder.commit_with_checkpoint(first.fence, VERSION, "1", "now")
    shutil.copy(path, tmp_path / "restored.sqlite3")
    os.replace(tmp_path / "restored.sqlite3", path)
    database.begin()
    with pytest.raises(LockLostError):
        recorder.commit_with_checkpoint(first.fence, VERSION, "2", "now")
    assert not database.in_transaction
    assert recorder.read_checkpoints(VERSION) == {VERSION: "1"}
