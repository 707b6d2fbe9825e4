"""The errors afterparty raises, each carrying the exit code the command line ends with."""

from __future__ import annotations


class AfterpartyError(Exception):
    """Something the user can fix; the message says what is wrong and what to do."""

    exit_code = 2
    #: The command as the user ran it (set by the command line), for the hints it prints.
    command: str | None = None


class ConfigError(AfterpartyError):
    """A bad flag, setting, URL or pyproject.toml (exit 2)."""


class UsageError(AfterpartyError):
    """A command was asked for something it cannot do (exit 2)."""


class StateChanged(UsageError):
    """A record is no longer in the state its writer read (exit 2): someone else (a person, a
    worker, another runner) moved it meanwhile, and nothing was changed."""


class TaskFileError(AfterpartyError):
    """One or more task files are broken (exit 2); every problem is listed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class UnknownTaskError(AfterpartyError):
    """A version or name on the command line names no task (exit 2)."""


class DatabaseError(AfterpartyError):
    """The tracking database is unreachable, read-only, misconfigured or its driver is missing."""

    exit_code = 4


class LockBusyError(AfterpartyError):
    """Another runner holds the lock and the wait ran out (exit 3)."""

    exit_code = 3


class LockLostError(AfterpartyError):
    """This runner no longer holds the environment lock (exit 3): its session ended, or a
    newer runner took the lock, so nothing it writes may commit."""

    exit_code = 3


class StoppedBySignal(BaseException):
    """SIGTERM arrived; raised in the main thread so the current task is rolled back."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by signal {signum}")
