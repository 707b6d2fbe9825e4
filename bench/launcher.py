"""Starts the processes that run.py measures, from a process kept small on purpose.

The kernel's peak memory for a child counts the memory of the process it was forked from,
so a child forked from the benchmark itself would inherit its size. This launcher runs with
``python -I -S`` and imports only built-in modules; run.py sends it requests on stdin.
Each request is (argv, cwd, env, count): start ``count`` copies together, wait for all, and
answer (wall seconds until the last one ended, [(exit code, peak KiB), ...]).
"""

import marshal
import os
import sys
import time


def spawn(argv, cwd, env):
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(cwd)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    return pid


def serve():
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = stdin.read(4)
        if len(header) < 4:
            return
        argv, cwd, env, count = marshal.loads(stdin.read(int.from_bytes(header, "big")))
        started = time.perf_counter()
        pids = [spawn(argv, cwd, env) for _ in range(count)]
        ended = []
        for pid in pids:
            _, status, usage = os.wait4(pid, 0)
            ended.append((os.waitstatus_to_exitcode(status), usage.ru_maxrss))
        answer = marshal.dumps((time.perf_counter() - started, ended))
        stdout.write(len(answer).to_bytes(4, "big") + answer)
        stdout.flush()


serve()
