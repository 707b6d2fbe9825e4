"""Packaging: the sdist and wheel build offline with the declared backend, carry the license,
one version, no lint tools for users, and an sdist whose tests run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(tmp_path: Path) -> tuple[Path, Path]:
    """`python -m build --no-isolation` in a copy of the checkout (the tree stays clean)."""
    source = tmp_path / "checkout"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "*.egg-info", "__pycache__", ".*_cache", "build", "dist", "*.sqlite3"))
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                           str(tmp_path / "dist"), str(source)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    return sdist, wheel


def test_the_package_builds_and_its_sdist_tests_run(tmp_path: Path) -> None:
    import afterparty

    sdist, wheel = build(tmp_path)
    assert wheel.name.startswith(f"afterparty-{afterparty.__version__}-")
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        metadata = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "afterparty/templates/task.py.tmpl" in names and "afterparty/py.typed" in names
    assert "afterparty/contrib/django/templates/admin/afterparty/task/decide.html" in names
    assert "afterparty/web/static/console.js" in names and "afterparty/web/static/console.css" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert f"Version: {afterparty.__version__}" in metadata
    assert "License-Expression: MIT" in metadata
    assert "Classifier: Programming Language :: Python :: 3" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    test_extra = [line for line in requires if "extra == \"test\"" in line]
    assert test_extra and not any(tool in line for line in test_extra for tool in ("ruff", "mypy"))
    assert any("ruff" in line and "extra == \"dev\"" in line for line in requires)

    with tarfile.open(sdist) as archive:
        if hasattr(tarfile, "data_filter"):  # Python 3.10.12+ / 3.11.4+: refuse odd members
            archive.extractall(tmp_path / "unpacked", filter="data")
        else:
            archive.extractall(tmp_path / "unpacked")  # our own freshly built sdist
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    for needed in ("LICENSE", "tests/conftest.py", "examples/quickstart/pyproject.toml",
                   "docs/how-to/deploy.md", "src/afterparty/templates/task.py.tmpl"):
        assert (unpacked / needed).exists(), f"the sdist lacks {needed}"
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
         "tests/test_portable_sql.py", "-k", "sqlite"],
        cwd=unpacked, capture_output=True, text=True, timeout=600, check=False)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "passed" in ran.stdout
