"""Settings of the example shop: the least Django needs, plus afterparty."""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["localhost", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "afterparty.contrib.django",
    "shop",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "shop_site.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "Europe/Paris"  # the admin shows afterparty's times in it


ENGINES = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql", "mariadb": "mysql"}


def database_from_url(url):
    """DATABASE_URL (postgresql://, mysql:// or mariadb://user:password@host:port/name) as a
    DATABASES entry."""
    parts = urlsplit(url)
    engine = ENGINES[parts.scheme.split("+")[0]]
    if engine == "mysql":
        try:
            import MySQLdb  # noqa: F401  (mysqlclient, Django's usual MySQL driver)
        except ImportError:
            import pymysql

            pymysql.install_as_MySQLdb()  # PyMySQL, pure Python, serves as mysqlclient
    return {
        "ENGINE": f"django.db.backends.{engine}",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


DATABASES = {
    "default": database_from_url(os.environ["DATABASE_URL"]) if os.environ.get("DATABASE_URL")
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"},
}

# afterparty keeps its records in DATABASES["default"], next to the shop's own tables
# (`python manage.py migrate` creates them; so does the first `manage.py afterparty run`).
# To keep them elsewhere, name the alias here or route the "afterparty" app with
# DATABASE_ROUTERS = ["shop_site.routers.OpsRouter"], then `migrate --database ops`.
AFTERPARTY = {
    "TASKS_DIR": BASE_DIR / "release_tasks",  # relative paths are relative to BASE_DIR too
    # "DATABASE": "ops",
    # "NOTIFY": ["slack://..."],
}
