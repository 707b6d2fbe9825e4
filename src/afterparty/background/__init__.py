"""Background tasks (``@task(background=True)``) on Celery workers: sending them from ``run``
(sending.py), running one on a worker exactly once under its lease (worker.py), and waiting for
them (waiting.py). The worker's entry point, the Celery task it registers, is
afterparty.contrib.celery's."""
