"""afterparty's version, in one place: the package exports it, pyproject.toml reads it through
``afterparty.__version__``, and each attempt records it."""

__version__ = "0.1.0"
