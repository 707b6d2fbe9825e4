"""Sends notifications through Apprise to the URLs in the ``notify`` setting."""

from __future__ import annotations

import logging


def send_notification(urls: list[str], message: str, title: str | None,
                      log: logging.Logger) -> bool:
    """Send a message; failures are logged, never raised. Returns whether it was delivered."""
    if not urls:
        log.info("notification (no notify URL configured): %s", message)
        return False
    try:
        import apprise
    except ImportError:
        log.warning("notification not sent: install afterparty[notify] (pip install "
                    "'afterparty[notify]') to send it; message: %s", message)
        return False
    sender = apprise.Apprise()
    for url in urls:
        if not sender.add(url):
            log.warning("notification URL not understood by Apprise: %s", url.split("://")[0] + "://…")
    delivered = bool(sender.notify(body=message, title=title or "afterparty"))
    if not delivered:
        log.warning("notification could not be delivered: %s", message)
    return delivered
