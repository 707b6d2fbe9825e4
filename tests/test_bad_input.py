"""Bad input: one clear line, the documented exit code, nothing run, nothing half-recorded."""

from __future__ import annotations

from pathlib import Path

from conftest import Project


def test_badly_named_files_are_reported_with_their_path_before_anything_runs(project: Project) -> None:
    ledger = project.root / "ledger.txt"
    project.write_task("20260101000001", "good", f"open({str(ledger)!r}, 'a').write('x')")
    (project.tasks_dir / "2026010100000_short.py").write_text("")
    (project.tasks_dir / "20260101000002_Upper.py").write_text("")
    (project.tasks_dir / "notes.txt").write_text("")
    (project.tasks_dir / "_helpers.py").write_text("X = 1\n")  # helpers are allowed
    (project.tasks_dir / "__init__.py").write_text("")
    result = project.cli("run")
    assert result.code == 2
    assert "3 problems" in result.err
    for name in ("2026010100000_short.py", "20260101000002_Upper.py", "notes.txt"):
        assert name in result.err
    assert "_helpers.py" not in result.err
    assert "Traceback" not in result.err
    assert not ledger.exists()


def test_duplicate_versions_and_names(project: Project) -> None:
    project.write_task("20260101000001", "same_version_a")
    project.write_task("20260101000001", "same_version_b")
    project.write_task("20260101000002", "twice")
    project.write_task("20260101000003", "twice")
    result = project.cli("run")
    assert result.code == 2
    assert "version 20260101000001 is also used" in result.err
    assert "name 'twice' is also used" in result.err


def test_broken_task_files_are_found_before_the_first_task_runs(project: Project) -> None:
    ledger = project.root / "ledger.txt"
    project.write_task("20260101000001", "good", f"open({str(ledger)!r}, 'a').write('x')")
    (project.tasks_dir / "20260101000002_syntax.py").write_text("from afterparty import task\n\ndef (:\n")
    (project.tasks_dir / "20260101000003_no_task.py").write_text("x = 1\n")
    (project.tasks_dir / "20260101000004_two_tasks.py").write_text(
        "from afterparty import task\n\n@task\ndef a(ctx): pass\n\n@task\ndef b(ctx): pass\n")
    (project.tasks_dir / "20260101000005_bad_import.py").write_text(
        "from afterparty import task\nimport not_a_module_anywhere\n")
    result = project.cli("run")
    assert result.code == 2, result.both
    assert "20260101000002_syntax.py:3: syntax error" in result.err
    assert "20260101000003_no_task.py: no @task" in result.err
    assert "20260101000004_two_tasks.py: 2 @task functions" in result.err
    assert "20260101000005_bad_import.py:2: cannot import: ModuleNotFoundError" in result.err
    assert "Traceback" not in result.err
    assert not ledger.exists()
    assert project.query("SELECT COUNT(*) FROM afterparty_attempts") == [(0,)]

    check = project.cli("check")
    assert check.code == 2
    assert "4 problems" in check.err


def test_check_passes_and_does_not_touch_the_database(tmp_path: Path, sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "good")
    result = sqlite_project.cli("check", extra_env={"AFTERPARTY_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"})
    assert result.code == 0, result.both
    assert "1 task file(s) OK" in result.out


def test_verbose_shows_the_traceback(sqlite_project: Project) -> None:
    (sqlite_project.tasks_dir / "oops.py").write_text("")
    assert "Traceback" in sqlite_project.cli("--verbose", "run").err


def test_missing_tasks_dir(sqlite_project: Project) -> None:
    result = sqlite_project.cli("run", "--dry-run", extra_env={"AFTERPARTY_TASKS_DIR": "nowhere"})
    assert result.code == 2
    assert "tasks directory" in result.err and "afterparty init" in result.err


def test_unparseable_database_url(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "one")
    for url in ("oracle://x/y", "no-scheme-at-all", "postgresql://u:secret@host:notaport/db",
                "postgresql://u:secret@host/"):
        result = sqlite_project.cli("run", extra_env={"AFTERPARTY_DATABASE_URL": url})
        assert result.code == 2, (url, result.both)
        assert len(result.err.strip().splitlines()) == 1
        assert "secret" not in result.both


def test_invalid_pyproject(sqlite_project: Project) -> None:
    (sqlite_project.root / "pyproject.toml").write_text("[tool.afterparty\n")
    result = sqlite_project.cli("status")
    assert result.code == 2
    assert "pyproject.toml is not valid TOML" in result.err


def test_unknown_setting_in_pyproject(sqlite_project: Project) -> None:
    (sqlite_project.root / "pyproject.toml").write_text('[tool.afterparty]\ntask_dir = "x"\n')
    result = sqlite_project.cli("status")
    assert result.code == 2
    assert "unknown key 'task_dir'" in result.err


def test_database_file_that_cannot_be_opened_is_exit_4(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "one")
    result = sqlite_project.cli(
        "run", extra_env={"AFTERPARTY_DATABASE_URL": "sqlite:////no/such/dir/records.db"})
    assert result.code == 4
    assert "cannot open SQLite database" in result.err


def test_database_path_that_is_a_directory_is_exit_4(tmp_path: Path,
                                                    sqlite_project: Project) -> None:
    ledger = sqlite_project.root / "ledger.txt"
    sqlite_project.write_task("20260101000001", "one", f"open({str(ledger)!r}, 'a').write('x')")
    (tmp_path / "a_directory.db").mkdir()
    result = sqlite_project.cli(
        "run", extra_env={"AFTERPARTY_DATABASE_URL": f"sqlite:///{tmp_path / 'a_directory.db'}"})
    assert result.code == 4, result.both
    assert len(result.err.strip().splitlines()) == 1
    assert not ledger.exists()


def test_a_file_afterparty_cannot_write_is_one_line_and_exit_2(sqlite_project: Project) -> None:
    (sqlite_project.root / "pyproject.toml").unlink()
    (sqlite_project.root / "pyproject.toml").mkdir()  # in the way of the file init writes
    result = sqlite_project.cli("init")
    assert result.code == 2, result.both
    assert len(result.err.strip().splitlines()) == 1
    assert "pyproject.toml" in result.err and "Traceback" not in result.err
