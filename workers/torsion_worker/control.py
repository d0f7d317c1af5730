"""The torsion module an application imports (Torsion: timers, the
control handler, the AMP locator), and the control socket's frames."""

import threading
import time
import traceback
import types

from . import amp
from .amp import _CommandLocator
from .frames import LOG, Router, answer_frame, parse_control, text_frame


class Torsion(types.ModuleType):
    """torsion: what a WSGI application running in torsion can ask of it.

        import torsion

        torsion.every(1, update, application, torsion.reactor)

        @torsion.control
        def set_greeting(line):
            application.greeting = line
            return "greeting is now: " + line

    every() calls a function every few seconds in this worker, as Twisted's
    TimerService does: at once, then at each interval, on a thread of its
    own (so it runs beside requests; assign shared state whole, as the
    seed's update does). An exception is logged with its traceback and the
    timer goes on. Timers start once the application is imported.

    control() registers the handler of the control channel (torsion web
    --control ENDPOINT): each line a client sends there is passed, as a
    str, to the handler in every worker, and the client gets back what it
    returns (str, or None for nothing); an exception goes back as an error
    instead. Every line that succeeded everywhere is given again, in order,
    to a worker that starts later (a restart, a recycled worker), before it
    serves, so a handler should set state rather than add to it.

    reactor.seconds() is the time, as Twisted's reactor tells it."""

    def __init__(self):
        super().__init__("torsion")
        self.timers = []
        self.handler = None
        self.amp_locator = None
        self.reactor = types.SimpleNamespace(seconds=time.time)

    def every(self, interval, func, *args, **kwargs):
        if not interval > 0:
            raise ValueError("torsion.every: the interval must be positive, not %r" % (interval,))
        self.timers.append((float(interval), func, args, kwargs))

    def control(self, func):
        if self.handler is not None:
            raise ValueError("torsion.control: a handler is registered already: %r" % (self.handler,))
        self.handler = func
        return func

    def locator(self, obj):
        """Registers obj, a torsion.amp.CommandLocator, to answer the AMP
        commands of torsion web --amp, in every worker."""
        if not isinstance(obj, _CommandLocator):
            raise TypeError("torsion.locator wants a torsion.amp.CommandLocator, not %r" % (obj,))
        self.amp_locator = obj
        return obj

    def start_timers(self, conn):
        for interval, func, args, kwargs in self.timers:
            threading.Thread(target=self._run_timer, args=(conn, interval, func, args, kwargs), daemon=True).start()

    @staticmethod
    def _run_timer(conn, interval, func, args, kwargs):
        due = time.monotonic()
        while True:
            try:
                func(*args, **kwargs)
            except Exception:
                conn.send(text_frame(LOG, 0, "timer %s failed; it goes on:\n%s" % (
                    getattr(func, "__qualname__", func), traceback.format_exc())))
            due += interval
            time.sleep(max(0.0, due - time.monotonic()))

    def serve_control(self, conn):
        """Answers the control lines torsion sends on conn, one at a time,
        until torsion closes it."""
        router = ControlRouter(self, conn)
        while True:
            try:
                frames = conn.read()
            except (EOFError, ConnectionError):
                return
            router.route(frames)

    def answer(self, kind, data):
        """The answer to one control message, (status, payload): a line
        (kind L) for the control handler, or an AMP box (kind A) for the
        locator."""
        if kind == b"A":
            if self.amp_locator is None:
                raise LookupError("the application registered no AMP locator (torsion.locator)")
            return self.amp_locator._answer(data)
        if self.handler is None:
            raise LookupError("the application registered no control handler (torsion.control)")
        reply = self.handler(data.decode("utf-8", "replace"))
        return 0, ("" if reply is None else str(reply)).encode("utf-8", "replace")


class ControlRouter(Router):
    """The control socket's frames: each M is answered with its m."""

    def __init__(self, torsion, conn):
        self.torsion, self.conn = torsion, conn

    def on_control(self, rid, payload):
        try:
            status, answer = self.torsion.answer(*parse_control(payload))
        except Exception:
            status, answer = 1, traceback.format_exc().encode("utf-8", "replace")
        self.conn.send(answer_frame(rid, status, answer))


TORSION = Torsion()
TORSION.amp = amp
