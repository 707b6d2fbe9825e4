"""Sends notifications through Apprise to the URLs in the ``notify`` setting."""

from __future__ import annotations

import logging
from typing import NamedTuple

from afterparty.errors import AfterpartyError


class NotificationError(AfterpartyError):
    """A task's notification reached no service (the task fails and is tried again)."""

    exit_code = 1


# The kinds of message, as Apprise's notify types: a chat shows each with its color or icon.
KINDS = ("info", "success", "warning", "failure")


class Delivery(NamedTuple):
    """What became of one message: ``problem`` is None when it was delivered (or no URL is
    set); ``results`` says what each service answered (``service``, ``url`` without secrets,
    ``ok``), as the outbox keeps it."""

    problem: str | None
    results: list[dict[str, object]]


def send_notification(urls: list[str], message: str, title: str | None,
                      log: logging.Logger, kind: str = "info") -> str | None:
    """Send a message of one kind (``KINDS``) to every URL; returns None when it was delivered
    (or no URL is set), else what went wrong, which is also logged as a warning."""
    return deliver(urls, message, title, log, kind).problem


def deliver(urls: list[str], message: str, title: str | None, log: logging.Logger,
            kind: str = "info") -> Delivery:
    """Send a message to every URL, one service after the other; delivered when at least one
    service accepted it. What is wrong is logged as a warning too."""
    if not urls:
        log.info("notification (no notify URL configured): %s", message)
        return Delivery(None, [])
    try:
        import apprise
    except ImportError:
        return Delivery(_problem(log, "notification not sent: Apprise is not installed "
                                      "(pip install 'afterparty[notify]')", message), [])
    sender = apprise.Apprise()
    for url in urls:
        if not sender.add(url):
            log.warning("notification URL not understood by Apprise: %s", url.split("://")[0] + "://…")
    results: list[dict[str, object]] = []
    for service in sender:
        accepted = bool(service.notify(body=message, title=title or "afterparty", notify_type=kind))
        results.append({"service": str(service.service_name),
                        "url": service.url(privacy=True),  # type: ignore[no-untyped-call]
                        "ok": accepted})
    if not any(result["ok"] for result in results):
        return Delivery(_problem(log, "notification not delivered: no notification service "
                                      "accepted it", message), results)
    return Delivery(None, results)


def _problem(log: logging.Logger, problem: str, message: str) -> str:
    log.warning("%s; message: %s", problem, message)
    return problem
