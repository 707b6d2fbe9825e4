#!/bin/sh
# Run the release tasks, then start the container's command (CMD). A task that fails
# (exit 1), a broken task file (2), a lock held too long (3), an unreachable database (4)
# or a task that waits for a human (5) stops here: the new version never starts serving.
set -e
: "${AFTERPARTY_ENV:=production}"
export AFTERPARTY_ENV
afterparty run --wait "${AFTERPARTY_WAIT:-600}"
exec "$@"
