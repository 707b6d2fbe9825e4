"""The web console (``afterparty web``, extra ``afterparty[web]``): every environment at a glance,
and the decisions people take on tasks, from a browser."""

from __future__ import annotations

from afterparty.web.app import create_app
from afterparty.web.config import WebConfig

__all__ = ["WebConfig", "create_app"]
