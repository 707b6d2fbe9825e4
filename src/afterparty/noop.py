"""Whether a plain ``run`` has nothing to do: the lock-free look every deploy takes, made
without the command line, so that the no-op deploy imports only what the look needs."""

from __future__ import annotations

import os

from afterparty.errors import AfterpartyError

# The look tries to connect once: a database that does not answer is left to the command line,
# which keeps trying for the connect timeout the user chose and then explains (a second wait
# here would double it).
CONNECT_TIMEOUT = 0.0


def nothing_to_do(flags: dict[str, str | None]) -> bool:
    """True when ``run`` would only say "no pending tasks": nothing pending, no human step
    awaiting, no held notice due, no release rolled back. The release deployed now is recorded
    as ``run`` records it. False whenever anything else is to be done or said (an error
    included): the command line then does it, deciding again from the records."""
    from afterparty.backends import open_database
    from afterparty.backends.url import parse_url
    from afterparty.config import load_settings
    from afterparty.planner import lock_free_look

    try:
        settings = load_settings(flags, quick=True)
        url = parse_url(settings.database_url, settings.database_url_source)
        if url.backend == "sqlite" and not os.path.exists(url.database):
            return False  # no records yet: everything is pending
        database = open_database(url, CONNECT_TIMEOUT)
    except (AfterpartyError, OSError):
        return False
    try:
        look = lock_free_look(settings, database)
        if look is None or look.pending or look.awaiting or look.notices_due or look.rolled_back:
            return False
        if look.new_release is not None:
            from afterparty.records import utc_now
            from afterparty.release_records import ReleaseRecords

            ReleaseRecords(database, settings.table_prefix).record_deployed(look.new_release,
                                                                            utc_now())
        return True
    except (AfterpartyError, OSError):
        return False
    finally:
        database.close()
