"""`auditkit sandbox` as a child process, for the tests that start it and stop it with
Ctrl-C as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

# A deadlock guard, not a speed check: on a loaded 2-core machine a child that stops in
# 0.1 s idle can still take seconds to be scheduled.
STOP_TIMEOUT = 90

# A parent that ignores SIGINT passes that on to its children: a job started with `&` by a
# shell without job control (a script, a CI runner) ignores it, and so does pytest run that
# way. A Python started with SIGINT ignored never turns Ctrl-C into KeyboardInterrupt, so the
# sandbox would serve on. A user's terminal does not ignore it: the child gets Python's own
# handler back before auditkit starts, as it has in a terminal.
_CHILD = (
    "import runpy, signal; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('auditkit', run_name='__main__', alter_sys=True)"
)


def start_sandbox(*args: str, **env: str) -> subprocess.Popen[str]:
    """`auditkit sandbox ARGS` in a child Python that turns SIGINT into KeyboardInterrupt
    whatever this process does with it, with no API settings from this process, and
    faulthandler on, so a child that will not stop can be made to say where it is."""
    child_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MULTIMAIL_", "INTERCOM_", "AUDITKIT_"))
    }
    child_env.update(env, PYTHONFAULTHANDLER="1")
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, "sandbox", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env,
    )


def interrupt(proc: subprocess.Popen[str], how: int = signal.SIGINT) -> tuple[str, str]:
    """Ctrl-C (or `how`, e.g. SIGTERM), then its stdout and stderr once it exits. A child
    still running after STOP_TIMEOUT is aborted, and faulthandler's dump of every thread
    fails the test."""
    proc.send_signal(how)
    try:
        return proc.communicate(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        _, err = proc.communicate()
        raise AssertionError(
            f"the sandbox did not stop within {STOP_TIMEOUT} s of {signal.Signals(how).name}; "
            "its threads:\n" + err[-6000:]
        ) from None


def kill_if_running(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.communicate()
