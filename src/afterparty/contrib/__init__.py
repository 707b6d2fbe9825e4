"""Integrations with web frameworks and ORMs: Django, Flask and SQLAlchemy."""
