"""The shop's own tests: `python manage.py test` builds a test database from the migrations,
afterparty's records tables included, so the admin can be smoke-tested like any other app."""

from django.contrib.auth.models import User
from django.test import TestCase

from afterparty.contrib.django.framework import records_alias
from afterparty.contrib.django.models import Attempt, Task


class ReleaseTasksAdminTests(TestCase):
    databases = "__all__"  # the records may live in another database (AFTERPARTY["DATABASE"], routers)

    def setUp(self):
        admin = User.objects.create_superuser("admin", "admin@example.com", "pw")
        self.client.force_login(admin)

    def test_lists_work_before_the_first_run(self):
        for model, empty in (("task", "0 release tasks"), ("attempt", "0 attempts")):
            self.assertContains(self.client.get(f"/admin/afterparty/{model}/"), empty)

    def test_a_failed_task_reads_as_people_expect(self):
        alias = records_alias()
        task = Task.objects.using(alias).create(
            version="20261126093000", name="welcome_points", state="failed", attempts=2,
            description="Give every customer 100 loyalty points",
            last_error="Traceback (most recent call last):\n  RuntimeError: no")
        for number, state in ((1, "failed"), (2, "failed")):
            last = Attempt.objects.using(alias).create(
                task=task, name=task.name, action="run", state=state, duration=1.23 * number,
                started_at="2026-11-26T09:30:00.000+00:00", error=f"Traceback {number}\n  boom")
        listing = self.client.get("/admin/afterparty/attempt/")
        self.assertContains(listing, "#1")
        self.assertContains(listing, "#2")
        self.assertContains(listing, "1.2 s")
        self.assertContains(listing, "2.5 s")
        self.assertContains(listing, "2026-11-26 10:30:00 CET")  # TIME_ZONE, not UTC
        tasks = self.client.get("/admin/afterparty/task/")
        self.assertContains(tasks, "Give every customer 100 loyalty points")
        detail = self.client.get("/admin/afterparty/task/20261126093000/change/")
        self.assertContains(detail, "<pre", count=3)  # the task's last error, each attempt's error
        self.assertNotContains(detail, 'name="_save"')
        attempt = self.client.get(f"/admin/afterparty/attempt/{last.pk}/change/")
        self.assertContains(attempt, "#2")
        self.assertContains(attempt, "<pre", count=1)
