"""Integrations with web frameworks (Django, Flask) and with Celery."""
