"""Test hook: SIGKILL a training process right after a given optimizer step.

Put this directory on ``PYTHONPATH`` and set ``GRAPHEVENT_TEST_KILL_AT_STEP=K`` (and
optionally ``GRAPHEVENT_TEST_KILL_RANK=R``): the process of rank R kills itself with
SIGKILL as soon as its optimizer step K is done, before the checkpoint of that step could
be written, and only on the first attempt (``TORCHELASTIC_RESTART_COUNT`` unset or 0), so
a restarted worker group runs to the end. Nothing in graphevent knows about this hook.
"""

import os

_STEP = os.environ.get("GRAPHEVENT_TEST_KILL_AT_STEP")

if _STEP:
    import signal

    import graphevent.train.engine as _engine

    _original_step = _engine.Trainer._optimizer_step

    def _step_then_die(self):
        _original_step(self)
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        rank = os.environ.get("GRAPHEVENT_TEST_KILL_RANK", "0")
        if self.state.step == int(_STEP) and str(self.ctx.rank) == rank and first_attempt:
            os.kill(os.getpid(), signal.SIGKILL)

    _engine.Trainer._optimizer_step = _step_then_die

# GRAPHEVENT_TEST_TERM_LAUNCHER_AT_STEP=K: after its optimizer step K, rank 0 sends SIGTERM to
# its parent, the process that launched the workers (as a batch system does on pre-emption);
# the launcher forwards it to every worker.
_TERM = os.environ.get("GRAPHEVENT_TEST_TERM_LAUNCHER_AT_STEP")

if _TERM:
    import signal as _signal

    import graphevent.train.engine as _engine_t

    _step_before_term = _engine_t.Trainer._optimizer_step

    def _step_then_term_launcher(self):
        _step_before_term(self)
        if self.state.step == int(_TERM) and self.ctx.rank == 0 and not getattr(_engine_t, "_term_sent", False):
            _engine_t._term_sent = True
            os.kill(os.getppid(), _signal.SIGTERM)
            import time as _time

            deadline = _time.monotonic() + 120  # wait for the launcher's forwarded SIGTERM, so that the
            while not self._signals.signum and _time.monotonic() < deadline:  # stop is at this step
                _time.sleep(0.01)

    _engine_t.Trainer._optimizer_step = _step_then_term_launcher
