"""`run --dry-run` says what the run will really do; unknown groups and conflicting choices
are usage errors."""

from __future__ import annotations

from conftest import Project


def test_the_dry_run_shows_waits_and_dependency_order(project: Project) -> None:
    """A task for 2030, a false condition, and a dependency written before its prerequisite."""
    project.write_task("20260101000001", "announce", options='depends_on=["prepare"]')
    project.write_task("20260101000002", "prepare")
    project.write_task("20260101000003", "in_2030", options='not_before="2030-01-01T00:00:00Z"')
    project.write_task("20260101000004", "when_ready", header="def ready(ctx):\n    return False\n",
                       options="when=ready")
    plan = project.cli("run", "--dry-run")
    assert plan.code == 0, plan.both
    lines = plan.out.splitlines()
    assert lines.index("would run 20260101000002 prepare") < lines.index(
        "would run 20260101000001 announce")
    assert "would wait 20260101000003: not before 2030-01-01 00:00:00 UTC" in lines
    assert "would wait 20260101000004: condition ready is not met yet" in lines
    assert "2 pending task(s) would run, 2 would wait; nothing was changed" in plan.out
    real = project.cli("run")
    assert real.code == 0, real.both
    assert real.out.index("prepare succeeded") < real.out.index("announce succeeded")
    assert "in_2030 waiting: not before 2030" in real.out.replace("\x1b", "")


def test_an_unknown_group_is_a_usage_error_naming_the_known_ones(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "warm_cache", options='group="after_deploy"')
    sqlite_project.write_task("20260101000002", "plain")
    for args in (("run", "--group", "afterdeploy"), ("run", "--dry-run", "--group", "afterdeploy")):
        result = sqlite_project.cli(*args)
        assert result.code == 2, result.both
        assert "unknown group 'afterdeploy'" in result.err
        assert "after_deploy, default" in result.err
    assert sqlite_project.query("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'afterparty_%'") \
        in ([(0,)], [])
    ok = sqlite_project.cli("run", "--group", "after_deploy")
    assert ok.code == 0 and "warm_cache succeeded" in ok.out and "plain" not in ok.out


def test_resolve_with_two_choices_is_refused(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "breaks", "raise RuntimeError('no')")
    assert sqlite_project.cli("run").code == 1
    result = sqlite_project.cli("resolve", "breaks", "--retry", "--done")
    assert result.code == 2, result.both
    assert "--retry" in result.err and "--done" in result.err and "one" in result.err
    assert "failed" in sqlite_project.cli("status").out


def test_a_wrong_task_option_is_named_with_file_and_line(sqlite_project: Project) -> None:
    """@task(timeout="ten") and friends: exit 2 at check and run, saying file, line and option."""
    wrong = {"timeout": '"ten"', "retries": '"2"', "depends_on": '"first"', "manual": '"yes"',
             "not_before": '"next tuesday"', "environments": '[1]', "on_interrupt": '"later"'}
    for option, value in wrong.items():
        path = sqlite_project.write_task("20260101000001", "odd", options=f"{option}={value}")
        for command in ("check", "run"):
            result = sqlite_project.cli(command)
            assert result.code == 2, (option, result.both)
            assert f"{path}:4: invalid option: @task({option}=...) takes" in result.err, result.err
            assert "Traceback" not in result.err
    sqlite_project.write_task("20260101000001", "odd", options='not_before="2020-01-01T00:00:00Z"')
    assert sqlite_project.cli("run").code == 0


def test_a_step_confirmed_at_the_prompt_is_counted_done(sqlite_project: Project) -> None:
    """After "y" at `done? [y/N]` the summary says succeeded, not "1 still pending"."""
    from test_human_steps import run_in_terminal

    sqlite_project.write_task("20260101000001", "by_hand", "return 'Flip the switch'",
                              options="manual=True")
    asked = run_in_terminal(sqlite_project, "run", answer="y")
    assert "done? [y/N]" in asked
    import re

    plain = re.sub(r"\x1b\[[0-9;]*m", "", asked)  # a terminal gets colours
    summary = next(line for line in plain.splitlines() if "summary:" in line)
    assert "1 succeeded" in summary and "still pending" not in summary, summary
