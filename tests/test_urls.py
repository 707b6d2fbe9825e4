"""Database URLs: what each one means, one clear line when it is wrong, and no password ever shown."""

from __future__ import annotations

import random
from typing import Any

import pytest

from afterparty.backends.url import SCHEMES, DatabaseURL, parse_url, redact, redact_url
from afterparty.errors import ConfigError

# --- URLs that work ------------------------------------------------------------------------------

PARSED: list[tuple[str, dict[str, Any]]] = [
    # passwords holding the characters that break urllib
    ("postgresql://deploy:Pa/ss@db.internal/app",
     {"username": "deploy", "password": "Pa/ss", "host": "db.internal", "port": None, "database": "app"}),
    ("postgresql://deploy:Pa#ss@db/app", {"password": "Pa#ss", "host": "db", "database": "app"}),
    ("postgresql://deploy:Pa?ss@db/app", {"password": "Pa?ss", "host": "db", "database": "app"}),
    ("postgresql://deploy:Pa:ss@db:5433/app", {"password": "Pa:ss", "host": "db", "port": 5433}),
    ("mysql://deploy:a/b#c?d:e@db:3307/app", {"password": "a/b#c?d:e", "host": "db", "port": 3307}),
    # percent-encoded and raw '@'
    ("postgresql://deploy:p%40ss@db/app", {"password": "p@ss", "host": "db"}),
    ("postgresql://deploy:p%2Fss@db/app", {"password": "p/ss", "host": "db"}),
    ("postgresql://deploy:p@ss@db/app", {"password": "p@ss", "host": "db", "database": "app"}),
    ("postgresql://deploy:p@ss/word@db/app", {"password": "p@ss/word", "host": "db", "database": "app"}),
    ("postgresql://me%40corp:pw@db/app", {"username": "me@corp", "password": "pw"}),
    ("postgresql://me@server:pw@server.example.com/app",  # Azure-style user name
     {"username": "me@server", "password": "pw", "host": "server.example.com"}),
    # hosts, users, ports
    ("postgresql://deploy:pw@[::1]:5432/app", {"host": "::1", "port": 5432, "where": "[::1]:5432"}),
    ("postgresql://[2001:db8::7]/app", {"host": "2001:db8::7", "port": None, "username": None}),
    ("postgresql://db/app",
     {"username": None, "password": None, "host": "db", "database": "app", "where": "db"}),
    ("postgresql://deploy@db:6432/app",
     {"username": "deploy", "password": None, "port": 6432, "where": "db:6432"}),
    ("postgresql://deploy:@db/app", {"username": "deploy", "password": ""}),
    ("postgresql://deploy:pw@db/my%20app", {"database": "my app"}),
    ("PostgreSQL://deploy:pw@db/app", {"backend": "postgresql"}),
    ("  postgresql://deploy:pw@db/app\n", {"database": "app", "redacted": "postgresql://deploy:***@db/app"}),
    # query strings: sockets, options, a password
    ("mysql://deploy:pw@localhost/app?unix_socket=/run/mysqld/mysqld.sock",
     {"backend": "mysql", "host": "localhost", "query": {"unix_socket": "/run/mysqld/mysqld.sock"}}),
    ("mysql://deploy@/app?unix_socket=/run/mysqld/mysqld.sock",
     {"host": None, "where": "/run/mysqld/mysqld.sock"}),
    ("postgresql://deploy@/app?host=/var/run/postgresql",
     {"host": None, "database": "app", "query": {"host": "/var/run/postgresql"},
      "where": "/var/run/postgresql"}),
    ("postgresql://deploy@db/app?password=qs3cret&sslmode=require",
     {"password": "qs3cret", "query": {"password": "qs3cret", "sslmode": "require"},
      "redacted": "postgresql://deploy@db/app?password=***&sslmode=require"}),
    ("postgresql://deploy:userinfo@db/app?password=other", {"password": "userinfo"}),
    ("postgresql://db:5432/app?application_name=me@laptop",
     {"username": None, "host": "db", "port": 5432, "query": {"application_name": "me@laptop"}}),
    # SQLite: relative and absolute files
    ("sqlite:///rel.db", {"backend": "sqlite", "database": "rel.db", "host": None, "where": "rel.db"}),
    ("sqlite:////abs/x.db", {"database": "/abs/x.db", "where": "/abs/x.db"}),
    ("sqlite:///data/app.db?timeout=10", {"database": "data/app.db", "query": {"timeout": "10"}}),
    ("sqlite:///C:/Users/me@corp/app.db", {"database": "C:/Users/me@corp/app.db"}),
    ("sqlite+aiosqlite:///app.db", {"backend": "sqlite", "database": "app.db"}),
]


@pytest.mark.parametrize(("url", "expected"), PARSED, ids=[url.strip() for url, _ in PARSED])
def test_a_url_means_what_sqlalchemy_would_read_in_it(url: str, expected: dict[str, Any]) -> None:
    """Each field comes out as written, odd passwords included."""
    parsed = parse_url(url)
    for name, value in expected.items():
        assert getattr(parsed, name) == value, name


@pytest.mark.parametrize(("url", "_"), PARSED, ids=[url.strip() for url, _ in PARSED])
def test_a_parsed_url_never_shows_its_password(url: str, _: object) -> None:
    """repr, str, redacted and where: none of them holds the password."""
    parsed = parse_url(url)
    for shown in (repr(parsed), str(parsed), parsed.redacted, parsed.where):
        if parsed.password:
            assert parsed.password not in shown
        assert "qs3cret" not in shown
    if parsed.password:
        assert "***" in parsed.redacted


def test_the_redacted_form_keeps_everything_but_the_password() -> None:
    """A user can still read which server, port, database and options a URL names."""
    url = parse_url("postgresql://deploy:Pa/ss#?x@db.internal:5433/app?sslmode=require", "DATABASE_URL")
    assert url.redacted == "postgresql://deploy:***@db.internal:5433/app?sslmode=require"
    assert str(url) == url.redacted
    assert url.where == "db.internal:5433"


EXPECTED_SCHEMES = {
    "sqlite": ["sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"],
    "postgresql": ["postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2",
                   "postgresql+asyncpg", "postgresql+pg8000"],
    "mysql": ["mysql", "mariadb", "mysql+pymysql", "mariadb+pymysql", "mysql+mysqldb", "mariadb+mysqldb",
              "mysql+mysqlconnector", "mysql+aiomysql", "mysql+asyncmy"],
}
ALL_SCHEMES = [(scheme, backend) for backend, schemes in EXPECTED_SCHEMES.items() for scheme in schemes]


def test_the_known_schemes_are_exactly_the_documented_ones() -> None:
    """No scheme more, none less: each names one of the three databases."""
    assert dict(ALL_SCHEMES) == SCHEMES


@pytest.mark.parametrize(("scheme", "backend"), ALL_SCHEMES)
def test_a_url_copied_from_a_sqlalchemy_setting_works_whatever_its_driver(scheme: str, backend: str) -> None:
    """postgresql+asyncpg://... opens PostgreSQL; afterparty uses its own driver."""
    url = f"{scheme}:///app.db" if backend == "sqlite" else f"{scheme}://deploy:S3cr/t@db/app"
    parsed = parse_url(url)
    assert parsed.backend == backend
    assert parsed.database == "app.db" if backend == "sqlite" else "app"
    assert "S3cr/t" not in parsed.redacted


# --- URLs that do not work: one line, the source named, no password ------------------------------

SECRET = "S3cr3t"
ERRORS: list[tuple[str, str]] = [
    ("", "it is empty"),
    ("postgress://deploy:S3cr3t@db/app", "scheme 'postgress://'"),
    ("oracle://deploy:S3cr3t@db/app", "use sqlite:///file.db, postgresql://"),
    ("deploy:S3cr3t@db/app", "no '://'"),
    ("postgresql:/deploy:S3cr3t@db/app", "no '://'"),
    ("deploy:S3cr3t@db://app", "does not start with the name of a database"),
    ("postgresql://deploy:S3cr3t@host:abc/db", "the port 'abc' is not a number"),
    ("postgresql://deploy:Pa/S3cr3t@db:abc/app", "the port 'abc' is not a number"),
    ("postgresql://deploy:S3cr3t@db:/app", "the port '' is not a number"),
    ("postgresql://deploy:S3cr3t@db:5\n432/app", "is not a number"),
    ("mysql://deploy:S3cr3t@db:70000/app", "the port 70000 is out of range"),
    ("mysql://deploy:S3cr3t@db:0/app", "out of range"),
    ("postgresql://deploy:S3cr3t/app", "not a port number"),  # '@host' forgotten
    ("postgresql://deploy:S3cr3t@db", "names no database"),
    ("postgresql://deploy:S3cr3t@db/", "names no database"),
    ("mysql://deploy:S3cr3t@db/?charset=utf8mb4", "names no database"),
    ("postgresql://deploy:S3cr3t@[::1/app", "cannot make out its host"),
    ("postgresql://deploy:S3c@r3t/x@db:abc/app", "the port 'abc' is not a number"),
    ("postgresql://deploy:S3c@r3t/x@[oops/app", "unclear where the password ends"),
    ("postgresql://deploy:S3c@r3t/x?y@db/app?z@w/v", "more than one way"),
    ("sqlite://", "in-memory database would forget what ran"),
    ("sqlite:///", "sqlite:///relative.db or sqlite:////absolute/path.db"),
    ("sqlite:///:memory:", "in-memory database, which forgets what ran"),
    ("sqlite+pysqlite:///app.db?mode=memory&cache=shared", "in-memory"),
    ("sqlite:///file::memory:?cache=shared", "in-memory"),
    ("sqlite://deploy:S3cr3t@db/app.db", "SQLite takes no user, password or host"),
]


@pytest.mark.parametrize(("url", "says"), ERRORS, ids=[url for url, _ in ERRORS])
def test_a_bad_url_is_one_line_naming_its_source_without_the_password(url: str, says: str) -> None:
    """The message says what is wrong and what to do, never the password."""
    with pytest.raises(ConfigError) as raised:
        parse_url(url, "DATABASE_URL")
    message = str(raised.value)
    assert says in message
    assert "\n" not in message and "\r" not in message
    assert message.startswith("cannot use database URL ")
    assert " (from DATABASE_URL): " in message
    for fragment in (SECRET, "S3c", "r3t"):
        assert fragment not in message
    assert raised.value.exit_code == 2


def test_a_bad_port_reads_as_documented() -> None:
    """The whole line, as a user sees it."""
    with pytest.raises(ConfigError) as raised:
        parse_url("postgresql://deploy:Pa/ss@host:abc/db", "DATABASE_URL")
    assert str(raised.value).startswith(
        "cannot use database URL 'postgresql://deploy:***@host:abc/db' (from DATABASE_URL): "
        "the port 'abc' is not a number"
    )


SOURCES = ["DATABASE_URL", "--database-url", "[tool.afterparty] in /srv/app/pyproject.toml"]


@pytest.mark.parametrize("source", SOURCES)
def test_every_error_names_where_the_url_came_from(source: str) -> None:
    """The environment variable, the flag or the pyproject.toml file."""
    for url, _ in ERRORS:
        with pytest.raises(ConfigError) as raised:
            parse_url(url, source)
        assert f"(from {source})" in str(raised.value)


def test_without_a_source_the_error_names_none() -> None:
    """A URL given in code: no '(from ...)'."""
    with pytest.raises(ConfigError) as raised:
        parse_url("postgresql://deploy:S3cr3t@db:abc/app")
    assert "(from" not in str(raised.value)
    assert SECRET not in str(raised.value)


def test_a_source_with_a_newline_still_gives_one_line() -> None:
    """A strange pyproject.toml path cannot break the message in two."""
    with pytest.raises(ConfigError) as raised:
        parse_url("sqlite://", "[tool.afterparty] in /tmp/a\nb/pyproject.toml")
    assert "\n" not in str(raised.value)


# --- redact(): any text, every password hidden --------------------------------------------------


def test_a_driver_error_with_several_urls_hides_each_password() -> None:
    """Two URLs, odd passwords, the rest of the text kept."""
    text = (
        "could not copy from postgresql://deploy:Pa/ss#1?x:y@db1:5432/app "
        "to mysql://root:hunter2@db2/app?charset=utf8mb4: timeout"
    )
    assert redact(text) == (
        "could not copy from postgresql://deploy:***@db1:5432/app "
        "to mysql://root:***@db2/app?charset=utf8mb4: timeout"
    )


def test_a_traceback_line_with_a_raw_at_in_the_password() -> None:
    """The password runs to the last '@' of the URL."""
    line = '  File "x.py", line 3, in <module>: engine("postgresql://deploy:p@ss@db/app")'
    assert redact(line) == '  File "x.py", line 3, in <module>: engine("postgresql://deploy:***@db/app")'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host=db port=5432 dbname=app user=deploy password=S3cr3t sslmode=require",
         "host=db port=5432 dbname=app user=deploy password=*** sslmode=require"),
        ("host=db password='S3 cr\\'3t' dbname=app", "host=db password=*** dbname=app"),
        ("PGPASSWORD=S3cr3t psql -h db", "PGPASSWORD=*** psql -h db"),
        ("connect(**{'host': 'db', 'password': 'S3cr3t'})", "connect(**{'host': 'db', 'password': ***})"),
        ('{"passwd": "S3cr3t"}', '{"passwd": ***}'),
        ("postgresql://db/app?password=S3cr3t&sslmode=require", "postgresql://db/app?password=***&sslmode=require"),
        ("password = S3cr3t", "password = ***"),
        ("password=S3&cr3t", "password=***"),
    ],
)
def test_libpq_and_query_string_passwords_are_hidden(text: str, expected: str) -> None:
    """password=..., quoted or not, in connection strings, queries, dicts."""
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Access denied for user 'deploy'@'10.0.0.7' (using password: YES)",
        'password authentication failed for user "deploy"',
        "cannot connect to postgresql://db:5432/app: timeout",
        "sqlite:///data/app.db is locked",
        "see https://example.com/docs?page=2",
        "",
    ],
)
def test_text_without_a_password_is_left_as_it_is(text: str) -> None:
    """Driver messages that mention passwords but hold none stay readable."""
    assert redact(text) == text


def test_a_password_with_a_space_is_hidden_up_to_its_at_sign() -> None:
    """Unencoded spaces: better too much hidden than a half password shown."""
    assert redact("postgresql://deploy:two words@db/app") == "postgresql://deploy:***@db/app"


@pytest.mark.parametrize("text", ["\udc80\udcff", "\x00\x01postgresql://u:S3cr3t@\x00", "\ud800" * 50, "://:@"])
def test_odd_characters_never_make_redact_fail(text: str) -> None:
    """Lone surrogates, NUL bytes, a bare '://:@'."""
    result = redact(text)
    assert isinstance(result, str)
    assert SECRET not in result


def test_bytes_given_by_mistake_are_still_redacted() -> None:
    """A driver message left as bytes."""
    assert redact(b"mysql://root:S3cr3t@db/app\xff") == "mysql://root:***@db/app\\xff"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://deploy:S3cr3t@db:abc/app", "postgresql://deploy:***@db:abc/app"),
        ("deploy:S3cr3t@db/app", "deploy:***@db/app"),
        ("postgresql://deploy:S3cr3t@[oops/app", "postgresql://deploy:***@[oops/app"),
        ("postgresql://deploy:S3cr3t/app", "postgresql://deploy:***/app"),
        ("mysql://db/app?password=S3cr3t", "mysql://db/app?password=***"),
        ("mysql://db/app?pass%77ord=S3cr3t&x=1", "mysql://db/app?pass%77ord=***&x=1"),
        ("postgresql://deploy:S3c@r3t/x@db/app", "postgresql://deploy:***@db/app"),
        ("not a url at all", "not a url at all"),
        ("", ""),
    ],
)
def test_redact_url_hides_the_password_even_of_a_url_that_does_not_parse(url: str, expected: str) -> None:
    """Used in errors: the URL may be wrong in any way."""
    assert redact_url(url) == expected


# --- random text: never an exception, never a planted password -----------------------------------

ALPHABET = "abcxyzDB019 :/@?#&=%'\"\\\n\t[]+.-_é\x00\udc80"
PLANTED = "Zq7/Kx#9?w:Vb"


def random_text(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(length))


def test_random_text_never_breaks_redact_and_never_keeps_a_planted_password() -> None:
    """3000 random texts with a URL planted somewhere in each."""
    rng = random.Random(20260101)
    for _ in range(3000):
        text = random_text(rng, rng.randrange(0, 80))
        assert isinstance(redact(text), str)
        assert isinstance(redact_url(text), str)
        cut = rng.randrange(0, len(text) + 1)
        scheme = rng.choice(["postgresql", "mysql+pymysql", "sqlite", "x"])
        planted = f"{text[:cut]}{scheme}://deploy:{PLANTED}@db/app{text[cut:]}"
        assert PLANTED not in redact(planted), planted


def test_random_urls_parse_or_fail_cleanly_and_never_show_the_password() -> None:
    """Whatever follows user:password@, parse_url returns or raises ConfigError, password hidden."""
    rng = random.Random(7)
    for _ in range(3000):
        tail = random_text(rng, rng.randrange(0, 30))
        url = f"postgresql://deploy:{PLANTED}@{tail}"
        try:
            parsed = parse_url(url, "DATABASE_URL")
        except ConfigError as error:
            shown = str(error)
            assert "\n" not in shown
        else:
            assert isinstance(parsed, DatabaseURL)
            shown = f"{parsed!r} {parsed.redacted} {parsed.where}"
        assert PLANTED not in shown, url
        assert redact_url(url).startswith("postgresql://deploy:***"), url
