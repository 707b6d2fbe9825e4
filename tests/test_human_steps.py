"""Human steps: a task that is instructions for a person, confirmed later or at the prompt."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

from conftest import Project


def test_manual_step_awaits_confirmation_and_unblocks_its_dependents(project: Project) -> None:
    made = project.cli("new", "restart_search", "--manual", "--description", "Restart the search cluster")
    assert made.code == 0, made.both
    version = made.out.strip().split("/")[-1][:14]
    project.write_task("20990101000001", "reindex", "print('reindexed')",
                       options='depends_on=["restart_search"]')
    project.write_task("20990101000002", "unrelated")

    result = project.cli("run")
    assert result.code == 0, result.both
    assert "restart_search awaits a person" in result.out
    assert "1. Do the thing that cannot be automated" in result.out  # the instructions
    assert "reindex waiting: depends on" in result.out and "(awaiting)" in result.out
    assert "unrelated succeeded" in result.out
    assert f"awaiting ops: {version} restart_search; when it is done: afterparty confirm {version}" \
        in result.out
    status = {t["name"]: t for t in json.loads(project.cli("status", "--json").out)["tasks"]}
    assert status["restart_search"]["state"] == "awaiting"
    assert status["restart_search"]["reason"] == f"awaits confirmation: afterparty confirm {version}"

    reminder = project.cli("run")
    assert reminder.code == 0
    assert f"afterparty confirm {version}" in reminder.out

    confirmed = project.cli("confirm", version, "--note", "restarted all 3 nodes")
    assert confirmed.code == 0, confirmed.both
    assert "awaiting -> succeeded" in confirmed.out
    after = project.cli("run")
    assert "reindex succeeded" in after.out
    history = json.loads(project.cli("show", "restart_search", "--json").out)["attempts"]
    assert [(a["action"], a["state"]) for a in history] == [("run", "awaiting"), ("confirm", "succeeded")]
    assert history[1]["note"] == "restarted all 3 nodes" and history[1]["username"]
    assert project.cli("confirm", version).code == 2  # nothing awaits any more


def run_in_terminal(project: Project, *args: str, answer: str | None) -> str:
    """Run afterparty with a real pseudo-terminal as its stdin and stdout."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(project.command(*args), cwd=project.root, env=project.env,
                               stdin=terminal, stdout=terminal, stderr=terminal)
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if answer is not None and not answered and b"done? [y/N]" in seen:
            os.write(controller, answer.encode() + b"\n")
            answered = True
        if process.poll() is not None and not ready:
            break
    process.wait(timeout=30)
    os.close(controller)
    return seen.decode(errors="replace")


def test_terminal_prompt_confirms_and_no_input_never_asks(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "by_hand", "return 'Flip the switch in the console'",
                              options='manual=True')
    shown = run_in_terminal(sqlite_project, "run", "--no-input", answer=None)
    assert "Flip the switch in the console" in shown and "done?" not in shown

    sqlite_project.cli("forget", "by_hand")
    asked = run_in_terminal(sqlite_project, "run", answer="y")
    assert "done? [y/N]" in asked
    history = json.loads(sqlite_project.cli("show", "by_hand", "--json").out)["attempts"]
    assert history[-1]["action"] == "confirm" and history[-1]["note"] == "confirmed at the prompt"
    assert json.loads(sqlite_project.cli("status", "--json").out)["tasks"][0]["state"] == "succeeded"
