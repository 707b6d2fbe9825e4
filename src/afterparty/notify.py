"""Sends notifications through Apprise to the URLs in the ``notify`` setting."""

from __future__ import annotations

import logging

from afterparty.errors import AfterpartyError


class NotificationError(AfterpartyError):
    """A task's notification reached no service (the task fails and is tried again)."""

    exit_code = 1


# The kinds of message, as Apprise's notify types: a chat shows each with its color or icon.
KINDS = ("info", "success", "warning", "failure")


def send_notification(urls: list[str], message: str, title: str | None,
                      log: logging.Logger, kind: str = "info") -> str | None:
    """Send a message of one kind (``KINDS``) to every URL; returns None when it was delivered
    (or no URL is set), else what went wrong, which is also logged as a warning."""
    if not urls:
        log.info("notification (no notify URL configured): %s", message)
        return None
    try:
        import apprise
    except ImportError:
        return _problem(log, "notification not sent: Apprise is not installed "
                             "(pip install 'afterparty[notify]')", message)
    sender = apprise.Apprise()
    for url in urls:
        if not sender.add(url):
            log.warning("notification URL not understood by Apprise: %s", url.split("://")[0] + "://…")
    if not sender.notify(body=message, title=title or "afterparty", notify_type=kind):
        return _problem(log, "notification not delivered: no notification service accepted it", message)
    return None


def _problem(log: logging.Logger, problem: str, message: str) -> str:
    log.warning("%s; message: %s", problem, message)
    return problem
