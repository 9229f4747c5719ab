"""Ctrl-C during a compiled solve.

A parallel solve is one compiled `lax.while_loop`; Python's `KeyboardInterrupt` is raised only when
control returns to the interpreter, so without help a Ctrl-C would wait for the whole solve. So:

- `listening()` (entered by `pnmcmc.solve` and by every compiled
  program of `parallel_sample`, on the main thread) replaces Python's SIGINT handler, for the
  duration of the call, by one that only records the signal, and points the *wakeup file
  descriptor* at a socket of ours (forwarding to any descriptor installed before, such as
  asyncio's). Python's C-level handler writes to that descriptor at once, whatever thread the
  interpreter is busy in;
- `requested()`, traced into the iteration loops, asks the host
  once per iteration (or per chunk of sequential steps) whether a SIGINT has arrived. The loop then
  stops (status INTERRUPTED) without finishing sequentially, the call returns within one
  iteration, and `listening()` raises `KeyboardInterrupt`: the partial result is never handed to
  the user. (The recording handler also keeps a `KeyboardInterrupt` from being raised inside the
  host callback itself, where JAX would turn it into a runtime error.)

Outside `listening()` (a solve inside the user's own `jax.jit`, another thread) the check answers
False and the loop runs to completion. A SIGINT that Python ignores (SIG_IGN) stays ignored; a
custom handler is called on leaving the block, after which `KeyboardInterrupt` is raised since the
result is incomplete.

An iteration itself (one vmapped pass over the chain, or XLA compiling a program) cannot be cut
short: the reaction time is that of one iteration.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["listening", "requested"]


class _Listener:
    """The wakeup socket and whether a SIGINT arrived since `listening()` was entered."""

    def __init__(self):
        self.depth = 0
        self.seen = False
        self.previous_fd = -1
        self.previous_handler = None
        self.reader = self.writer = None

    def record(self, signum, frame):
        self.seen = True

    def poll(self) -> bool:
        if self.reader is not None and not self.seen:
            try:
                data = self.reader.recv(4096)
            except OSError:  # nothing there (BlockingIOError), or closed
                data = b""
            if signal.SIGINT in data:
                self.seen = True
            if data and self.previous_fd >= 0:  # pass every signal byte on to the one we replaced
                with contextlib.suppress(OSError):
                    os.write(self.previous_fd, data)
        return self.seen


_LISTENER = _Listener()


@contextlib.contextmanager
def listening():
    """Let a Ctrl-C stop the compiled solves run inside this block within about one iteration.

    Re-entrant; a no-op off the main thread or where Python ignores SIGINT. On leaving the block
    after a Ctrl-C it raises `KeyboardInterrupt`, so an interrupted result is never returned.
    """
    listener = _LISTENER
    if listener.depth > 0:
        listener.depth += 1
        try:
            yield
        finally:
            listener.depth -= 1
        return
    previous_handler = (
        signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    )
    if previous_handler in (None, signal.SIG_IGN, signal.SIG_DFL):
        yield  # not the main thread, or SIGINT is not Python's to handle here
        return
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    try:
        previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main interpreter
        reader.close()
        writer.close()
        yield
        return
    signal.signal(signal.SIGINT, listener.record)
    listener.reader, listener.writer, listener.previous_fd = reader, writer, previous_fd
    listener.previous_handler, listener.seen, listener.depth = previous_handler, False, 1
    try:
        yield
    finally:
        interrupted = listener.poll()
        signal.signal(signal.SIGINT, previous_handler)
        signal.set_wakeup_fd(previous_fd)
        reader.close()
        writer.close()
        listener.reader = listener.writer = None
        listener.depth, listener.seen = 0, False
        if interrupted:
            if previous_handler is not signal.default_int_handler:
                previous_handler(signal.SIGINT, None)
            raise KeyboardInterrupt("pnmcmc: the solve was interrupted (Ctrl-C); nothing was returned.")


def _poll(counter):
    return np.full(np.shape(counter), _LISTENER.poll(), np.bool_)


def requested(counter) -> jax.Array:
    """A traced boolean: has Ctrl-C been pressed since the enclosing `listening()` was entered?

    One host callback per call; call it once per iteration of a loop that may run long, passing the
    loop's counter. The callback is a `pure_callback` (an effectful `io_callback` is not allowed in
    a `while_loop` under `vmap`); the counter, which changes every iteration, keeps XLA from
    hoisting it out of the loop as an invariant.
    """
    counter = jnp.asarray(counter)
    return jax.pure_callback(
        _poll, jax.ShapeDtypeStruct(counter.shape, jnp.bool_), counter, vmap_method="broadcast_all"
    )
