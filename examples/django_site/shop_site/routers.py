"""A router that keeps afterparty's records in a database of their own, the ``ops`` alias.

Enable it with ``DATABASE_ROUTERS = ["shop_site.routers.OpsRouter"]`` and an ``ops`` entry in
``DATABASES``; then ``python manage.py migrate --database ops`` creates the records tables
there, ``manage.py afterparty`` records there and the admin reads them from there.
"""

RECORDS = "afterparty"


class OpsRouter:
    def db_for_read(self, model, **hints):
        return "ops" if model._meta.app_label == RECORDS else None

    def db_for_write(self, model, **hints):
        return "ops" if model._meta.app_label == RECORDS else None

    def allow_relation(self, obj1, obj2, **hints):
        return None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return (db == "ops") == (app_label == RECORDS)
