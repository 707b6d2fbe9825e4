"""The deploy recipes' shared entrypoint (examples/deploy/docker-entrypoint.sh), run for real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: afterparty depends on tomli there
    import tomli as tomllib

from conftest import Project

ENTRYPOINT = Path(__file__).resolve().parent.parent / "examples" / "deploy" / "docker-entrypoint.sh"


def start(project: Project, *command: str) -> subprocess.CompletedProcess[str]:
    """Start a "container": the entrypoint with the app's command, afterparty on PATH."""
    bin_dir = os.path.dirname(sys.executable)
    env = {**project.env, "PATH": f"{bin_dir}{os.pathsep}{project.env.get('PATH', '')}"}
    return subprocess.run([str(ENTRYPOINT), *command], cwd=project.root, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_app_starts_after_its_release_tasks_ran(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "only_in_production", "print(ctx.env)")
    started = start(sqlite_project, "echo", "app serving")
    assert started.returncode == 0, started.stderr
    assert "production" in started.stdout  # the recipe sets AFTERPARTY_ENV=production
    assert started.stdout.strip().endswith("app serving")
    again = start(sqlite_project, "echo", "app serving")
    assert "no pending tasks" in again.stdout and again.returncode == 0


def test_a_failing_task_keeps_the_new_version_from_starting(sqlite_project: Project) -> None:
    sqlite_project.write_task("20260101000001", "breaks", "raise RuntimeError('no')")
    started = start(sqlite_project, "echo", "app serving")
    assert started.returncode == 1
    assert "app serving" not in started.stdout


def test_a_manual_step_nobody_confirmed_keeps_the_app_from_starting(sqlite_project: Project) -> None:
    """What docs/how-to/deploy.md promises: the entrypoint stops at a step awaiting a person."""
    sqlite_project.write_task("20260101000001", "restart_search", '"""Restart the cluster."""',
                              options="manual=True")
    started = start(sqlite_project, "echo", "app serving")
    assert started.returncode == 6, started.stdout + started.stderr
    assert "restart_search: awaiting" in started.stdout
    assert "app serving" not in started.stdout
    assert sqlite_project.cli("--env", "production", "confirm", "20260101000001").code == 0
    again = start(sqlite_project, "echo", "app serving")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.strip().endswith("app serving")


# --- Every recipe of the manual's deploy pages: run the ones this machine can run, parse the others.

DEPLOY_DOCS = [Path(__file__).resolve().parent.parent / "docs" / "how-to" / page
               for page in ("deploy.md", "deploy-gates.md")]
DJANGO_SITE = Path(__file__).resolve().parent.parent / "examples" / "django_site"


def deploy_docs_text() -> str:
    return "\n".join(page.read_text() for page in DEPLOY_DOCS)


def doc_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", deploy_docs_text(), re.S)


def yaml_documents() -> list[object]:
    """Every YAML block of the doc, loaded; Helm's {{ ... }} rendered to a placeholder first."""
    import yaml

    return [yaml.safe_load(re.sub(r"\{\{.*?\}\}", "rendered", block)) for block in doc_blocks("yaml")]


def containers(document: object) -> list[dict[str, object]]:
    """Every container (and init container) of a Kubernetes manifest."""
    found: list[dict[str, object]] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found += [c for c in value if isinstance(c, dict)]
            else:
                found += containers(value)
    elif isinstance(document, list):
        for value in document:
            found += containers(value)
    return found


def with_path(env: dict[str, str]) -> dict[str, str]:
    return {**env, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{env.get('PATH', '')}"}


def test_every_recipe_parses_and_names_commands_that_exist(sqlite_project: Project) -> None:
    """YAML loads, fly.toml loads, and each `afterparty COMMAND` in the doc is a real command."""
    documents = yaml_documents()
    assert len(documents) >= 6  # Job, Helm hook, init container, Actions x2, probe, Render
    for block in doc_blocks("toml"):
        tomllib.loads(block)
    commands = set(re.findall(r"afterparty (?:--\S+ \S+ )*([a-z][a-z-]+)", deploy_docs_text()))
    commands -= {"run", "s", "records", "keeps", "itself", "import"}  # prose, code; `run` runs below
    for command in sorted(commands | {"run"}):
        shown = sqlite_project.cli(command, "--help")
        assert shown.code == 0, f"the deploy pages name `afterparty {command}`: {shown.err}"
    probe_commands = [c["readinessProbe"]["exec"]["command"] for doc in documents  # type: ignore[index]
                      for c in containers(doc) if "readinessProbe" in c]
    assert probe_commands == [["afterparty", "verify", "--allow-pending"]]


def test_the_kubernetes_job_command_runs_as_written(sqlite_project: Project) -> None:
    """The Job's command and env (its secret is the test database) run the tasks in production."""
    job = next(doc for doc in yaml_documents() if isinstance(doc, dict) and doc.get("kind") == "Job"
               and "release-tasks-" in str(doc["metadata"]))
    (container,) = containers(job)
    env = dict(sqlite_project.env)
    for item in container["env"]:  # type: ignore[attr-defined]
        env[item["name"]] = item.get("value", sqlite_project.database_url)
    sqlite_project.write_task("20260101000001", "only_in_production", "print('ran in', ctx.env)",
                              options='environments=["production"]')
    done = subprocess.run(container["command"], cwd=sqlite_project.root, env=with_path(env),  # type: ignore[arg-type]
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "ran in production" in done.stdout


def test_the_procfile_release_command_runs_as_written(tmp_path: Path) -> None:
    """Heroku's `release:` line, run in a copy of the Django example on SQLite."""
    import shutil

    (procfile,) = doc_blocks("Procfile")
    release = next(line for line in procfile.splitlines() if line.startswith("release:"))
    site = tmp_path / "django_site"
    shutil.copytree(DJANGO_SITE, site, ignore=shutil.ignore_patterns("db.sqlite3", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERPARTY_") and k != "DATABASE_URL"}
    env.update(AFTERPARTY_ENV="production", PYTHONDONTWRITEBYTECODE="1")
    command = release.split(":", 1)[1].strip().replace("python ", f"{sys.executable} ")
    done = subprocess.run(["sh", "-c", command], cwd=site, env=with_path(env), capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "succeeded" in done.stdout
    again = subprocess.run(["sh", "-c", command], cwd=site, env=with_path(env), capture_output=True,
                           text=True, timeout=300, check=False)
    assert again.returncode == 0 and "no pending tasks" in again.stdout, again.stdout + again.stderr


def test_the_github_actions_afterparty_steps_run_as_written(sqlite_project: Project) -> None:
    """Each Actions step whose `run:` is afterparty's, with the step's env, in a project."""
    steps = [step for doc in yaml_documents() if isinstance(doc, dict) and "jobs" in doc
             for job in doc["jobs"].values() for step in job["steps"]
             if str(step.get("run", "")).startswith("afterparty")]
    assert [s["run"].split()[1] for s in steps] == ["run", "verify"]
    sqlite_project.write_task("20260101000001", "tell_support", "print('told')")
    for step in steps:
        env = {**sqlite_project.env, **{k: str(v) for k, v in step.get("env", {}).items()}}
        env["AFTERPARTY_DATABASE_URL"] = sqlite_project.database_url
        done = subprocess.run(["sh", "-c", step["run"]], cwd=sqlite_project.root,
                              env=with_path(env), capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 0, f"{step['run']}: {done.stdout}{done.stderr}"
