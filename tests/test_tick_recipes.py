"""The recipes of docs/how-to/tick.md, run for real: the crontab line, the Kubernetes CronJob's
container, and the Celery beat entry with a real worker running beat."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from conftest import Project, wait_until
from test_celery import redis_url  # noqa: F401  (a fixture: a Redis server of the test's own)

PAGE = Path(__file__).resolve().parent.parent / "docs" / "how-to" / "tick.md"


def block(language: str, title: str | None = None) -> str:
    """The one block of the page in ``language`` (with that title)."""
    info = re.escape(language) + (rf' title="{re.escape(title)}"' if title else "")
    found = re.findall(rf"^```{info}\n(.*?)^```", PAGE.read_text(), re.S | re.M)
    assert len(found) == 1, f"{PAGE.name} has {len(found)} {language} blocks"
    return str(found[0])


def waiting_task(project: Project) -> Path:
    """A task a deploy's run left waiting on a condition that now holds: a tick runs it."""
    flag = project.root / "partner_is_live"
    ledger = project.root / "ledger"
    project.write_task("20260101000001", "call_partner", f"open({str(ledger)!r}, 'a').write('ran')",
                       header=f"""
        import os


        def partner_is_live(ctx):
            return os.path.exists({str(flag)!r})
    """, options="when=partner_is_live")
    deploy = project.cli("--env", "production", "run")
    assert deploy.code == 0 and "waiting" in deploy.out, deploy.both
    flag.write_text("")
    return ledger


def path_with_afterparty(project: Project) -> str:
    return f"{os.path.dirname(sys.executable)}{os.pathsep}{project.env.get('PATH', '')}"


def test_the_crontab_line_runs_a_tick_every_minute(sqlite_project: Project, tmp_path: Path) -> None:
    project = sqlite_project
    ledger = waiting_task(project)
    variables, line = block("crontab").strip().splitlines()
    fields = line.split(None, 5)
    assert fields[:5] == ["*"] * 5  # every minute
    assert variables.startswith("AFTERPARTY_DATABASE_URL=")
    (project.root / "REVISION").write_text("4f2c9e1\n")
    os.symlink(sys.prefix, project.root / ".venv")
    log = tmp_path / "tick.log"
    command = fields[5].replace("/srv/shop/current", shlex.quote(str(project.root))).replace(
        "/var/log/afterparty-tick.log", shlex.quote(str(log)))
    # cron runs the line with sh, with the crontab's variables and little else.
    cron_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHELL": "/bin/sh",
                "AFTERPARTY_DATABASE_URL": project.database_url}
    done = subprocess.run(["/bin/sh", "-c", command], env=cron_env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr + log.read_text()
    assert "call_partner succeeded" in log.read_text() and "tick: 1 task(s) ran" in log.read_text()
    assert ledger.read_text() == "ran"
    assert project.query("SELECT release_id FROM afterparty_attempts") == [("4f2c9e1",)]


def test_the_cronjob_runs_the_tick_in_the_applications_image(sqlite_project: Project) -> None:
    import yaml

    project = sqlite_project
    ledger = waiting_task(project)
    manifest = yaml.safe_load(block("yaml"))
    assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "CronJob")
    spec = manifest["spec"]
    assert spec["schedule"] == "* * * * *" and spec["concurrencyPolicy"] == "Forbid"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    # What the cluster gives the container: literal values, and the secrets' (here the test's).
    secrets = {("shop-database", "url"): project.database_url, ("shop-notify", "urls"): ""}
    env = {item["name"]: item["value"] if "value" in item else
           secrets[(item["valueFrom"]["secretKeyRef"]["name"], item["valueFrom"]["secretKeyRef"]["key"])]
           for item in container["env"]}
    assert env["AFTERPARTY_ENV"] == "production"
    command = container["command"] + container.get("args", [])
    done = subprocess.run(command, cwd=project.root, capture_output=True, text=True, timeout=120,
                          env={**project.env, "PATH": path_with_afterparty(project), **env},
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tick: 1 task(s) ran" in done.stdout and ledger.read_text() == "ran"


def test_celery_beat_sends_the_tick_to_a_worker(sqlite_project: Project, redis_url: str,  # noqa: F811
                                                tmp_path: Path) -> None:
    project = sqlite_project
    ledger = waiting_task(project)
    package = project.root / "proj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    # The page's app, with beat every second instead of every minute (and the test's Redis).
    source = block("python", "proj/celery.py")
    assert "tick_schedule(every=60.0)" in source
    (package / "celery.py").write_text(source.replace("every=60.0", "every=1.0"))
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "proj", "worker", "-B", "--pool", "solo",
             "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
             "--schedule", str(tmp_path / "beat-schedule")],
            cwd=project.root, stdout=out, stderr=subprocess.STDOUT, text=True,
            env={**project.env, "CELERY_BROKER_URL": redis_url, "AFTERPARTY_ENV": "production"})
    try:
        wait_until(lambda: ledger.exists() or worker.poll() is not None,
                   "a tick from beat running the waiting task")
        assert worker.poll() is None, log.read_text()
        wait_until(lambda: "tick: 1 task(s) ran" in log.read_text(), "the tick's summary in the log")
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=30)
    assert ledger.read_text() == "ran"
    assert project.query("SELECT state FROM afterparty_tasks") == [("succeeded",)]
