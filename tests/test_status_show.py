"""status and show: what ran, what is pending, what changed, and every attempt."""

from __future__ import annotations

import json

from conftest import Project


def test_status_lists_files_and_records_with_flags(project: Project) -> None:
    project.write_task("20260101000001", "done_one", options='description="First of all"')
    gone = project.write_task("20260101000002", "will_vanish")
    changed = project.write_task("20260101000003", "will_change")
    assert project.cli("run").code == 0
    project.write_task("20260101000004", "still_pending", options='description="Later"')
    gone.unlink()
    changed.write_text(changed.read_text() + "\n# edited after it ran\n")

    result = project.cli("status")
    assert result.code == 0, result.both
    lines = {line.split()[1]: line for line in result.out.splitlines() if line[:1].isdigit()}
    assert "succeeded" in lines["done_one"]
    assert "file missing" in lines["will_vanish"]
    assert "modified since it ran" in lines["will_change"]
    assert "pending" in lines["still_pending"]

    data = json.loads(project.cli("status", "--json").out)
    tasks = {t["name"]: t for t in data["tasks"]}
    assert [t["version"] for t in data["tasks"]] == sorted(t["version"] for t in data["tasks"])
    for key in ("version", "name", "state", "description", "attempts", "last_run_at",
                "file_missing", "modified"):
        assert all(key in t for t in data["tasks"])
    assert tasks["done_one"]["description"] == "First of all"
    assert tasks["done_one"]["attempts"] == 1
    assert tasks["done_one"]["last_run_at"]
    assert tasks["will_vanish"]["file_missing"] is True
    assert tasks["will_change"]["modified"] is True
    assert tasks["still_pending"] | {"path": None} == tasks["still_pending"] | {"path": None}
    assert tasks["still_pending"]["state"] == "pending"
    assert tasks["still_pending"]["description"] == "Later"
    assert tasks["still_pending"]["attempts"] == 0


def test_status_does_not_import_task_files(project: Project) -> None:
    marker = project.root / "imported"
    project.write_task("20260101000001", "loud", header=f"open({str(marker)!r}, 'w')\n")
    assert project.cli("status").code == 0
    assert not marker.exists()


def test_show_prints_every_attempt(project: Project) -> None:
    project.write_task("20260101000001", "flaky", """
        ctx.log.warning("try number %s", ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("service down")
    """)
    project.cli("run", extra_env={"AFTERPARTY_RELEASE": "r1"})
    project.cli("run", extra_env={"AFTERPARTY_RELEASE": "r2"})
    result = project.cli("show", "20260101000001")
    assert result.code == 0, result.both
    out = result.out
    assert "flaky: succeeded" in out
    assert "#1 run: failed" in out and "#2 run: succeeded" in out
    assert "ConnectionError: service down" in out and "Traceback" in out
    assert "WARNING try number 1" in out and "WARNING try number 2" in out
    assert "release r1" in out and "release r2" in out
    for field in ("started", "finished", "pid", "environment development"):
        assert field in out
    data = json.loads(project.cli("show", "flaky", "--json").out)
    assert [a["state"] for a in data["attempts"]] == ["failed", "succeeded"]
    assert data["attempts"][0]["host"] and data["attempts"][0]["pid"] > 0
    assert data["attempts"][0]["username"]


def test_show_unknown_task_is_exit_2(project: Project) -> None:
    result = project.cli("show", "20990101000000")
    assert result.code == 2
    assert "no task file or record" in result.err


def test_status_tells_changed_files_from_old_unchanged_and_touched_ones(sqlite_project: Project) -> None:
    """Files dated before their run are known unchanged by size and time; any other is read."""
    import os
    import time

    project = sqlite_project
    an_hour_ago = time.time() - 3600
    paths = {name: project.write_task(f"2026010100000{n}", name, options=f'description="{name}"')
             for n, name in enumerate(("untouched", "touched", "edited", "same_size"))}
    for path in paths.values():
        os.utime(path, (an_hour_ago, an_hour_ago))
    assert project.cli("run").code == 0
    os.utime(paths["touched"])  # a checkout that rewrote the same bytes
    edited = paths["edited"]
    edited.write_text(edited.read_text() + "# edited\n")
    sneaky = paths["same_size"]
    sneaky.write_text(sneaky.read_text().replace("pass", "1   "))  # same size...
    os.utime(sneaky, (an_hour_ago, an_hour_ago + 1))  # ...and a different old time

    data = json.loads(project.cli("status", "--json").out)
    modified = {t["name"]: t["modified"] for t in data["tasks"]}
    assert modified == {"untouched": False, "touched": False, "edited": True,
                        "same_size": True}
    assert {t["description"] for t in data["tasks"]} == set(paths)
