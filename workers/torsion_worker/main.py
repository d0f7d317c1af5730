"""The worker's start: its options, the application's import, and the
loop of the interface it speaks."""

import argparse
import faulthandler
import asyncio
import importlib
import inspect
import os
import signal
import socket
import sys
import threading
import traceback

from . import amp
from .asgi import Asgi
from .control import TORSION
from .frames import Conn, ready_frame
from .wsgi import Inline, Threaded, Worker


def load(spec, option="--wsgi"):
    """Imports MODULE:ATTR (gunicorn's form) or MODULE.ATTR (Twisted's)."""
    if ":" in spec:
        module, attr = spec.split(":", 1)
    elif "." in spec:
        module, attr = spec.rsplit(".", 1)
    else:
        raise SystemExit("torsion: %s %r: want MODULE:ATTR or MODULE.ATTR" % (option, spec))
    obj = importlib.import_module(module)
    for name in attr.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise SystemExit("torsion: %s %s: module %r has no attribute %r" % (option, spec, module, attr)) from None
    if not callable(obj):
        raise SystemExit("torsion: %s %s: %r is not callable" % (option, spec, obj))
    return obj


def is_async(app):
    """Whether app is an ASGI application: a coroutine function, or an
    object whose __call__ is one."""
    call = app if inspect.isroutine(app) else getattr(type(app), "__call__", None)
    return inspect.iscoroutinefunction(call)


def check_interface(spec, app, asgi):
    """Refuses an application that is plainly of the other kind: an
    ASGI one (a coroutine function of scope, receive, send) given to
    --wsgi, or a plain function of two arguments given to --asgi."""
    async_app = is_async(app)
    try:
        params = [p for p in inspect.signature(app).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = None
    if not asgi and async_app:
        raise SystemExit("torsion: --wsgi %s is an ASGI application (a coroutine function of scope, receive, send): "
                         "serve it with --asgi %s" % (spec, spec))
    if asgi and not async_app and params is not None and len(params) == 2:
        raise SystemExit("torsion: --asgi %s is a WSGI application (a function of environ, start_response): "
                         "serve it with --wsgi %s" % (spec, spec))


def print_import_error(e):
    """Prints the traceback of an application that failed to import,
    from the application's first frame on: this package's and importlib's
    frames say nothing to its author."""
    tb = e.__traceback__
    here = os.path.dirname(os.path.abspath(__file__))
    while tb is not None and (os.path.dirname(tb.tb_frame.f_code.co_filename) == here
                              or tb.tb_frame.f_code.co_filename == importlib.__file__
                              or tb.tb_frame.f_code.co_filename.startswith("<frozen importlib")):
        tb = tb.tb_next
    traceback.print_exception(type(e), e, tb)


STACKS = None  # the file SIGUSR1's stacks go to, kept open


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--app", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--fd", type=int, default=3)
    p.add_argument("--control-fd", type=int, default=-1)
    p.add_argument("--stacks-fd", type=int, default=-1, help="where SIGUSR1 writes the stack of every thread")
    p.add_argument("--interface", choices=("wsgi", "asgi"), default="wsgi")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--probe", action="store_true", help="print whether the application is wsgi or asgi, and exit")
    args = p.parse_args()
    # torsion handles ^C and SIGTERM and closes our socket when it is time.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if args.stacks_fd >= 0:
        # Before torsion kills a worker stuck in a request, or in the
        # application's import, it asks where every thread is: SIGUSR1
        # writes their stacks there, from C, whatever the threads hold.
        global STACKS
        STACKS = os.fdopen(args.stacks_fd, "w")
        faulthandler.register(signal.SIGUSR1, file=STACKS, all_threads=True)
    sys.path.insert(0, os.getcwd())
    sys.modules["torsion"] = TORSION
    sys.modules["torsion.amp"] = amp
    try:
        app = load(args.app, "--" + args.interface)
    except SystemExit:
        raise
    except BaseException as e:
        print_import_error(e)
        sys.exit(3)
    if args.probe:
        print("asgi" if is_async(app) else "wsgi")
        return
    asgi = args.interface == "asgi"
    check_interface(args.app, app, asgi)
    conn = Conn(socket.socket(fileno=args.fd))

    def ready():
        conn.send(ready_frame())
        if args.control_fd >= 0:
            control = Conn(socket.socket(fileno=args.control_fd))
            threading.Thread(target=TORSION.serve_control, args=(control,), daemon=True).start()
        TORSION.start_timers(conn)

    if asgi:
        if args.loop == "uvloop":
            try:
                import uvloop
            except ImportError:
                raise SystemExit("torsion: --asgi-loop uvloop: this Python has no uvloop "
                                 "(Debian: apt install python3-uvloop)") from None
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        Asgi(app, conn, args.threads).run(ready)
        return
    ready()
    chan = Inline(conn) if args.threads <= 1 else Threaded(conn, args.threads)
    worker = Worker(app, conn, args.threads, args.workers)
    try:
        chan.serve(worker.run)
    except (EOFError, ConnectionError):
        pass  # torsion closed the socket: time to go


if __name__ == "__main__":
    main()
