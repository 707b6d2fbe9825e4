"""``afterparty web``: the console served by uvicorn."""

from __future__ import annotations

from afterparty.config import Settings
from afterparty.web.app import create_app
from afterparty.web.config import OpenSession, WebConfig


def serve(settings: Settings, host: str, port: int, no_auth: bool, connect_timeout: float,
          open_session: OpenSession | None = None) -> None:
    """Serve the console until stopped; refuses (UsageError, ConfigError) before listening when
    it would serve anyone without authentication or lacks its secret or users. ``open_session``:
    a web framework's (``manage.py afterparty web``, ``flask afterparty web``)."""
    import uvicorn

    config = WebConfig.load(settings, no_auth=no_auth, host=host, connect_timeout=connect_timeout,
                            open_session=open_session)
    # uvicorn's proxy headers would put X-Forwarded-For's address in the request's client, and
    # trusted_proxies is about the peer that really connected: the console reads them itself.
    uvicorn.run(create_app(config), host=host, port=port, log_level="info", server_header=False,
                proxy_headers=False, forwarded_allow_ips="")
