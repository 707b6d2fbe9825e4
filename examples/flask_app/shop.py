"""The example shop: a Flask app with Flask-SQLAlchemy (FLASK_APP=shop)."""

import os

import click
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Customer(db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(unique=True)
    loyalty_points: Mapped[int] = mapped_column(default=0)


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///shop.sqlite3")
    # afterparty reads AFTERPARTY_* keys from app.config (environment variables win).
    app.config["AFTERPARTY_TASKS_DIR"] = "release_tasks"
    db.init_app(app)

    @app.cli.command("init-db")
    def init_db() -> None:
        """Create the tables and two customers."""
        db.create_all()
        db.session.add_all([Customer(name="ada"), Customer(name="grace")])
        db.session.commit()
        click.echo("created 2 customers")

    return app
