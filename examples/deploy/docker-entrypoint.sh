#!/bin/sh
# Run the release tasks, then start the container's command (CMD). A task that fails
# (exit 1), a broken task file (2), a lock held too long (3), an unreachable database (4) or a
# task held after an interruption (5) stops `run`. `run` exits 0 when a manual step awaits a
# person (the other tasks went on): the gate (`verify`, exit 6) stops here until someone ran
# `afterparty confirm`, and also for a failed, interrupted or modified task. Pending tasks that
# wait for their time or condition do not stop the app (--allow-pending).
set -e
: "${AFTERPARTY_ENV:=production}"
export AFTERPARTY_ENV
afterparty run --wait "${AFTERPARTY_WAIT:-600}"
afterparty verify --allow-pending
exec "$@"
