"""The Django app: ``manage.py afterparty`` on Django's database, and the records in the admin.

Add ``"afterparty.contrib.django"`` to ``INSTALLED_APPS``.
"""
