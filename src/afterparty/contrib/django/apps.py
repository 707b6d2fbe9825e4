"""The Django app configuration of afterparty."""

from __future__ import annotations

from django.apps import AppConfig


class AfterpartyConfig(AppConfig):
    name = "afterparty.contrib.django"
    label = "afterparty"
    verbose_name = "Release tasks"
    default_auto_field = "django.db.models.BigAutoField"
