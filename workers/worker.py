"""torsion's WSGI worker: runs one WSGI application (PEP 3333) for torsion,
which does all the networking. Standard library only, so it runs under any
Python 3.8+ interpreter, PyPy included.

torsion starts it as  python worker.py --app MODULE:ATTR --threads N --workers M  with
a connected Unix socket as file descriptor 3, and the two talk in frames.
PROTOCOL.md, beside this file, is the one description of those frames;
this program follows version PROTOCOL_VERSION of it.
"""

import argparse
import array
import asyncio
import collections
import http
import importlib
import inspect
import marshal
import os
import queue
import re
import signal
import socket
import stat
import struct
import sys
import threading
import time
import traceback
import types

PROTOCOL_VERSION = 1

# Frame kinds (PROTOCOL.md). torsion to worker:
REQUEST, BODY, BODY_ERROR, CANCEL, WINDOW_ACK = (ord(k) for k in "RBYCW")
# worker to torsion:
READY, START, DATA, FILE, READ, ERROR, END, LOG = (ord(k) for k in "KSDFrXEL")
# On the control socket: a control line, and its answer.
CONTROL, CONTROL_ANSWER = ord("M"), ord("m")

HEADER = struct.Struct("<BII")
U32 = struct.Struct("<I")
OFFSET = struct.Struct("<Q")
WINDOW = 1 << 20  # streamed body sent unacknowledged (torsion's window)
MAX_DATA = 1 << 20  # body data per frame; tracebacks and log lines are cut to it
POLL = 0.05
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
STATUS = re.compile(r"[1-9][0-9][0-9] [^\x00-\x08\x0a-\x1f\x7f]*\Z")
DIGITS = re.compile(r"[0-9]+\Z")


def frame(kind, rid, payload=b""):
    return HEADER.pack(kind, rid, len(payload)) + payload


def data_frames(rid, data):
    """D frames for data, MAX_DATA at most each."""
    if len(data) <= MAX_DATA:
        return frame(DATA, rid, data)
    view = memoryview(data)
    return b"".join(frame(DATA, rid, view[i:i + MAX_DATA]) for i in range(0, len(data), MAX_DATA))


def text_frame(kind, rid, text):
    """An X or L frame: text in UTF-8, cut to MAX_DATA."""
    return frame(kind, rid, text.encode("utf-8", "replace")[:MAX_DATA])


# The payloads of the other frames (PROTOCOL.md), written and read here
# only. torsion to worker:

TIMEOUT = b"timeout"  # the C payload of a request that ran past --timeout (ASGI)


def parse_request(payload):
    """An R payload: (more, the body's first bytes, the environ)."""
    n = U32.unpack_from(payload, 1)[0]
    return payload[0], payload[5:5 + n], marshal.loads(memoryview(payload)[5 + n:])


def window_count(payload):
    """A W payload: how many more bytes of streamed body torsion passed on."""
    return U32.unpack(payload)[0]


def parse_control(payload):
    """An M payload: (its kind, b"L" or b"A", and the message)."""
    return payload[:1], payload[1:]


# worker to torsion:

def ready_frame():
    """K: the protocol version, this process's id and Python's version."""
    return frame(READY, 0, ("%d %d %s" % (PROTOCOL_VERSION, os.getpid(), sys.version.split()[0])).encode())


def file_frame(rid, offset):
    """F: send the file whose descriptor goes with it, from offset."""
    return frame(FILE, rid, OFFSET.pack(offset))


def read_frame(rid, most):
    """r: ask for at most most bytes more of the request body."""
    return frame(READ, rid, U32.pack(most))


def end_frame(rid, trailers=()):
    """E: the response is complete, with its trailer fields if any."""
    return frame(END, rid, encode_fields([], trailers) if trailers else b"")


def answer_frame(rid, status, answer):
    """m: the answer to control message rid: status 0 and what the handler
    returned, 1 and a traceback, 2 and a declared error's box."""
    return frame(CONTROL_ANSWER, rid, (bytes((status,)) + answer)[:MAX_DATA])


class Router:
    """Routes the frames torsion sends, by one table for every channel
    (WSGI, ASGI, control): each kind to the method ROUTES names, called
    with the request id and the payload. A subclass defines the methods of
    the kinds it takes; frames of others are dropped. routed() runs after
    each batch."""

    ROUTES = {REQUEST: "on_request", BODY: "on_body", BODY_ERROR: "on_body_error",
              CANCEL: "on_cancel", WINDOW_ACK: "on_window", CONTROL: "on_control"}

    def route(self, frames):
        routes = self.__dict__.get("_routes")
        if routes is None:
            routes = self._routes = {k: getattr(self, name) for k, name in self.ROUTES.items() if hasattr(self, name)}
        for kind, rid, payload in frames:
            handler = routes.get(kind)
            if handler is not None:
                handler(rid, payload)
        self.routed()

    def routed(self):
        pass


class Channel(Router):
    """Routes the frames of WSGI requests to the requests they belong to.
    Frames for a request that has ended (acknowledgements of the last of
    a stream, say) are dropped: nothing would take them out of the inbox.
    Subclasses say how requests start and how an inbox queues."""

    def on_request(self, rid, payload):
        self.start(rid, payload)

    def on_cancel(self, rid, payload):
        self.cancel(rid)

    def on_body(self, rid, payload):
        self.deliver(rid, payload)

    on_window = on_body  # the thread streaming the response waits for it

    def on_body_error(self, rid, payload):
        self.deliver(rid, BodyError(payload))


class Conn:
    """The socket to torsion: framed writes under a lock, framed reads."""

    def __init__(self, sock):
        self.sock = sock
        self.lock = threading.Lock()
        self.rest = b""
        # recv() into a fresh 256 KiB bytes object costs an mmap, an mremap
        # and a munmap per read; reading into one buffer costs a copy of
        # what arrived.
        self.buf = bytearray(262144)
        self.view = memoryview(self.buf)

    def send(self, data):
        with self.lock:
            self.sock.sendall(data)

    def send_fd(self, data, fd):
        """Sends data with a duplicate of file descriptor fd attached to
        its first byte (SCM_RIGHTS)."""
        with self.lock:
            sent = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
            if sent < len(data):
                self.sock.sendall(memoryview(data)[sent:])

    def read(self, block=True):
        """Returns the complete frames that one read brings, as a list of
        (kind, id, payload); [] when nothing is waiting and block is False.
        Raises EOFError when torsion closed the socket."""
        try:
            got = self.sock.recv_into(self.buf, 0, 0 if block else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return []
        if not got:
            raise EOFError
        data = bytes(self.view[:got])
        if self.rest:
            data = self.rest + data
        frames, pos, end = [], 0, len(data)
        while end - pos >= 9:
            kind, rid, n = HEADER.unpack_from(data, pos)
            if end - pos - 9 < n:
                break
            frames.append((kind, rid, data[pos + 9:pos + 9 + n]))
            pos += 9 + n
        self.rest = data[pos:]
        return frames


class Inline(Channel):
    """One thread: the main thread reads frames and runs each request."""

    def __init__(self, conn):
        self.conn = conn
        self.pending = collections.deque()
        self.live = set()  # requests received and not ended
        self.inbox = collections.defaultdict(collections.deque)
        self.cancelled = set()
        self.polled = 0.0

    def start(self, rid, payload):
        self.pending.append((rid, payload))
        self.live.add(rid)

    def cancel(self, rid):
        if rid in self.live:
            self.cancelled.add(rid)

    def deliver(self, rid, item):
        if rid in self.live:
            self.inbox[rid].append(item)

    def serve(self, run):
        while True:
            while not self.pending:
                self.route(self.conn.read())
            rid, payload = self.pending.popleft()
            self.polled = time.monotonic()
            run(rid, payload, self)
            self.live.discard(rid)
            self.inbox.pop(rid, None)
            self.cancelled.discard(rid)

    def wait(self, rid):
        box = self.inbox[rid]
        while not box:
            self.route(self.conn.read())
        return box.popleft()

    def poll(self, rid):
        """Reports whether the client of rid went away. Reads what torsion
        sent at most every POLL seconds of a request, counted from its
        start: a response of one chunk costs no read, a long stream at most
        twenty a second."""
        now = time.monotonic()
        if now - self.polled >= POLL:
            self.polled = now
            self.route(self.conn.read(block=False))
        return rid in self.cancelled


class Threaded(Channel):
    """N threads: the main thread routes frames; the pool runs requests."""

    def __init__(self, conn, threads):
        self.conn = conn
        self.threads = threads
        self.requests = queue.Queue()
        self.lock = threading.Lock()
        self.live = set()  # requests received and not ended
        self.inbox = {}
        self.cancelled = set()

    def box(self, rid):
        """The inbox of rid, or None if rid has ended."""
        with self.lock:
            b = self.inbox.get(rid)
            if b is None and rid in self.live:
                b = self.inbox[rid] = queue.SimpleQueue()
            return b

    def serve(self, run):
        def work():
            while True:
                item = self.requests.get()
                if item is None:
                    return
                rid, payload = item
                try:
                    run(rid, payload, self)
                except BaseException:  # sys.exit() in the app: let torsion restart us
                    traceback.print_exc()
                    os._exit(1)
                with self.lock:
                    self.live.discard(rid)
                    self.inbox.pop(rid, None)
                    self.cancelled.discard(rid)

        for _ in range(self.threads):
            threading.Thread(target=work, daemon=True).start()
        while True:
            self.route(self.conn.read())

    def start(self, rid, payload):
        with self.lock:
            self.live.add(rid)
        self.requests.put((rid, payload))

    def cancel(self, rid):
        with self.lock:
            if rid in self.live:
                self.cancelled.add(rid)

    def deliver(self, rid, item):
        box = self.box(rid)
        if box is not None:
            box.put(item)

    def wait(self, rid):
        return self.box(rid).get()

    def poll(self, rid):
        return rid in self.cancelled


class BodyError:
    """Stands in the inbox for a Y frame: the body cannot be read."""

    def __init__(self, why):
        self.why = why.decode("utf-8", "replace")


class Input:
    """wsgi.input: the request body, pulled from torsion as it is read."""

    def __init__(self, rid, body, more, chan):
        self.rid, self.buf, self.more, self.chan = rid, body, more, chan
        self.pos = 0
        self.error = None  # why the body was cut short, once it was

    def _fill(self, want):
        if self.error:
            raise OSError(self.error)
        if not self.more:
            return False
        self.chan.conn.send(read_frame(self.rid, max(want, 65536)))
        data = self.chan.wait(self.rid)
        if type(data) is BodyError:
            self.more = False
            self.error = "the request body was cut short: " + data.why
            raise OSError(self.error)
        if not data:
            self.more = False
            return False
        self.buf = self.buf[self.pos:] + data
        self.pos = 0
        return True

    def read(self, size=-1):
        if size is None or size < 0:
            while self._fill(1 << 20):
                pass
            size = len(self.buf) - self.pos
        while len(self.buf) - self.pos < size and self._fill(size - (len(self.buf) - self.pos)):
            pass
        data = self.buf[self.pos:self.pos + size]
        self.pos += len(data)
        return data

    def readline(self, size=-1):
        while True:
            i = self.buf.find(b"\n", self.pos)
            if i >= 0 and (size is None or size < 0 or i - self.pos < size):
                return self.read(i + 1 - self.pos)
            avail = len(self.buf) - self.pos
            if size is not None and 0 <= size <= avail:
                return self.read(size)
            if not self._fill(65536):
                return self.read(avail)

    def readlines(self, hint=-1):
        lines, total = [], 0
        for line in self:
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line


class Errors:
    """wsgi.errors: what is written goes to torsion's log, a line at a time:
    writes are joined until a newline (print() writes its text and its end
    separately), each thread its own, and the rest of a line goes out on
    flush(), which the worker calls when a request ends."""

    def __init__(self, conn):
        self.conn = conn
        self.pending = threading.local()  # .text: the line so far; .rid: the request being run

    def write(self, s):
        s = getattr(self.pending, "text", "") + str(s)
        head, sep, tail = s.rpartition("\n")
        self.pending.text = tail
        if sep:
            self.conn.send(text_frame(LOG, getattr(self.pending, "rid", 0), head + sep))

    def writelines(self, seq):
        for s in seq:
            self.write(s)

    def flush(self):
        text = getattr(self.pending, "text", "")
        if text:
            self.pending.text = ""
            self.conn.send(text_frame(LOG, getattr(self.pending, "rid", 0), text))


class FileWrapper:
    """wsgi.file_wrapper: a real file is handed to torsion to send with
    sendfile; anything else is read in blocks."""

    def __init__(self, filelike, blksize=8192):
        self.filelike, self.blksize = filelike, blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        read = self.filelike.read
        while True:
            data = read(self.blksize)
            if not data:
                return
            yield data

    def sendable(self):
        """Returns (fd, offset) if the file can go to torsion, else None."""
        try:
            fd = self.filelike.fileno()
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return fd, self.filelike.tell()
        except (AttributeError, OSError, ValueError):
            return None


def encode_head(status, headers):
    """Checks the status and headers and returns the S payload: the count
    of fields, their lengths, then the fields. Raises ValueError saying
    what is wrong. Statuses and names already checked are remembered (a
    few hundred of them at most), and a value of printable ASCII needs no
    regular expression: an application sends the same few every time."""
    if type(status) is not str or (status not in STATUSES and not _check_status(status)):
        raise ValueError("invalid status %r: want a str like '200 OK'" % (status,))
    return encode_fields([status], headers)


def encode_fields(parts, headers):
    """Checks headers and returns a payload of fields, as encode_head's:
    the count of fields, their lengths, then the fields, parts (the status
    line, or nothing for trailers) first."""
    length = False
    for h in headers:
        if type(h) is not tuple or len(h) != 2:
            raise ValueError("invalid header %r: want a (name, value) tuple" % (h,))
        name, value = h
        if type(name) is not str:
            raise ValueError("invalid header name %r" % (name,))
        lower = NAMES.get(name) or _check_name(name)
        if type(value) is not str or not (value.isascii() and value.isprintable()) and BAD_VALUE.search(value):
            raise ValueError("invalid value for header %s: %r" % (name, value))
        if lower == "content-length":
            if length:
                raise ValueError("Content-Length given twice")
            if not (value.isascii() and value.isdigit()):
                raise ValueError("invalid Content-Length %r: want digits" % value)
            length = True
        parts.append(name)
        parts.append(value)
    try:
        data = "".join(parts).encode("latin-1")  # one byte per character
    except UnicodeEncodeError as e:
        raise ValueError("status or header is not latin-1: %s" % e) from None
    n = len(parts)
    lengths = LENGTHS.get(n)
    if lengths is None:
        lengths = LENGTHS[n] = struct.Struct("<%dI" % (n + 1))
    return lengths.pack(n, *map(len, parts)) + data


STATUSES = set()  # statuses checked: valid
NAMES = {}  # header names checked: their lower-case form


def _check_status(status):
    if not STATUS.match(status):
        return False
    if len(STATUSES) < 256:
        STATUSES.add(status)
    return True


def _check_name(name):
    """Returns the lower-case form of a valid header name; raises
    ValueError for an invalid one. Hop-by-hop ones go to torsion, which
    honours Connection: close and drops the others with a warning."""
    if not TOKEN.match(name):
        raise ValueError("invalid header name %r" % (name,))
    lower = name.lower()
    if len(NAMES) < 512:
        NAMES[name] = lower
    return lower


LENGTHS = {}  # a Struct for the head of an S payload, by number of fields


class Worker:
    def __init__(self, app, conn, threads, workers):
        self.app, self.conn = app, conn
        self.base = {
            "wsgi.version": (1, 0),
            "wsgi.errors": Errors(conn),
            "wsgi.multithread": threads > 1,
            "wsgi.multiprocess": workers > 1,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }

    def run(self, rid, payload, chan):
        conn = self.conn
        if rid in chan.cancelled:  # the client left before it started
            conn.send(end_frame(rid))
            return
        more, first, environ = parse_request(payload)
        environ.update(self.base)
        environ["wsgi.input"] = Input(rid, first, more, chan)
        errors = self.base["wsgi.errors"]
        errors.pending.rid = rid  # what this thread writes is this request's

        head = []  # [status, headers] once start_response was called
        sent = []  # non-empty once S was sent

        def start_response(status, headers, exc_info=None):
            if exc_info:
                try:
                    if sent:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif head:
                raise AssertionError("start_response called a second time without exc_info")
            head[:] = [status, headers]
            return write

        def head_frame():
            if not head:
                raise AssertionError("the application did not call start_response")
            sent.append(True)
            return frame(START, rid, encode_head(*head))

        def write(data):
            if type(data) is not bytes:
                raise TypeError("write() takes bytes, not %s" % type(data).__name__)
            out = b"" if sent else head_frame()
            if data:
                out += data_frames(rid, data)
            if out:
                conn.send(out)

        result = None
        ended = False
        try:
            result = self.app(environ, start_response)
            if type(result) is list or type(result) is tuple:
                # Exactly a list or tuple: no close() to call, so the whole
                # response, end included, leaves in one write.
                try:
                    body = b"".join(result)
                except TypeError:
                    bad = next(c for c in result if type(c) is not bytes)
                    raise TypeError("the application yielded %s, not bytes" % type(bad).__name__) from None
                out = b"" if sent else head_frame()
                if body:
                    out += data_frames(rid, body)
                conn.send(out + end_frame(rid))
                ended = True
            elif isinstance(result, (bytes, str)):
                raise TypeError("the application returned %s, not an iterable of bytes: return [body]" % type(result).__name__)
            elif type(result) is FileWrapper and result.sendable():
                fd, offset = result.sendable()
                # torsion gets its own descriptor: ours closes with close().
                conn.send_fd((b"" if sent else head_frame()) + file_frame(rid, offset), fd)
            else:
                unacked = 0
                for chunk in result:
                    if type(chunk) is not bytes:
                        raise TypeError("the application yielded %s, not bytes" % type(chunk).__name__)
                    if chunk:
                        write(chunk)
                        unacked += len(chunk)
                        while unacked > WINDOW and rid not in chan.cancelled:
                            unacked -= window_count(chan.wait(rid))
                        if chan.poll(rid):
                            break
                if not sent:
                    conn.send(head_frame())
        except Exception:
            conn.send(text_frame(ERROR, rid, traceback.format_exc()))
        finally:
            errors.flush()
            errors.pending.rid = 0
            if not ended:
                try:
                    if hasattr(result, "close"):
                        result.close()
                except Exception:
                    conn.send(text_frame(ERROR, rid, traceback.format_exc()))
                conn.send(end_frame(rid))


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


class _AmpArgument:
    """An AMP argument type: toString() to the wire, fromString() from it."""

    def __init__(self, optional=False):
        self.optional = optional


class _Integer(_AmpArgument):
    def toString(self, v):
        return b"%d" % (v,)

    def fromString(self, s):
        return int(s)


class _String(_AmpArgument):
    def toString(self, v):
        return v

    def fromString(self, s):
        return s


class _Float(_AmpArgument):
    def toString(self, v):
        if not isinstance(v, float):
            raise ValueError("Bad float value %r" % (v,))
        return str(v).encode("ascii")

    def fromString(self, s):
        return float(s)


class _Boolean(_AmpArgument):
    def toString(self, v):
        return b"True" if v else b"False"

    def fromString(self, s):
        if s == b"True":
            return True
        if s == b"False":
            return False
        raise TypeError("Bad boolean value: %r" % (s,))


class _Unicode(_AmpArgument):
    def toString(self, v):
        return v.encode("utf-8")

    def fromString(self, s):
        return s.decode("utf-8")


class _Decimal(_AmpArgument):
    def toString(self, v):
        import decimal
        if not isinstance(v, decimal.Decimal):
            raise ValueError("amp.Decimal can only encode instances of decimal.Decimal")
        return str(v).encode("ascii")

    def fromString(self, s):
        import decimal
        return decimal.Decimal(s.decode("ascii"))


class _DateTime(_AmpArgument):
    def toString(self, v):
        offset = v.utcoffset()
        if offset is None:
            raise ValueError("amp.DateTime cannot serialize naive datetime instances")
        minutes = (offset.days * 86400 + offset.seconds) // 60
        return ("%04i-%02i-%02iT%02i:%02i:%02i.%06i%s%02i:%02i" % (
            v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond,
            "+" if minutes > 0 else "-", abs(minutes) // 60, abs(minutes) % 60)).encode("ascii")

    def fromString(self, s):
        import datetime
        s = s.decode("ascii")
        if len(s) != 32:
            raise ValueError("invalid date format %r" % (s,))
        sign = -1 if s[26] == "-" else 1
        tz = datetime.timezone(sign * datetime.timedelta(hours=int(s[27:29]), minutes=int(s[30:32])))
        return datetime.datetime(int(s[0:4]), int(s[5:7]), int(s[8:10]), int(s[11:13]), int(s[14:16]),
                                 int(s[17:19]), int(s[20:26]), tz)


class _ListOf(_AmpArgument):
    def __init__(self, elementType, optional=False):
        super().__init__(optional)
        self.elementType = elementType

    def toString(self, v):
        out = []
        for item in v:
            b = self.elementType.toString(item)
            out.append(struct.pack("!H", len(b)) + b)
        return b"".join(out)

    def fromString(self, s):
        out, pos = [], 0
        while pos < len(s):
            n = struct.unpack_from("!H", s, pos)[0]
            out.append(self.elementType.fromString(s[pos + 2:pos + 2 + n]))
            pos += 2 + n
        return out


class _AmpList(_AmpArgument):
    def __init__(self, subargs, optional=False):
        super().__init__(optional)
        self.subargs = subargs

    def toString(self, v):
        return b"".join(_amp_serialize(_amp_encode(self.subargs, item)) for item in v)

    def fromString(self, s):
        return [_amp_decode(self.subargs, box) for box in _amp_parse(s)]


def _amp_serialize(box):
    """The wire form of a box: 2-byte lengths, keys sorted, an empty key last."""
    out = []
    for k, v in sorted(box.items()):
        if len(k) > 0xFF or len(v) > 0xFFFF:
            raise ValueError("AMP key or value too long: %r" % (k,))
        out.append(struct.pack("!H", len(k)) + k + struct.pack("!H", len(v)) + v)
    out.append(b"\0\0")
    return b"".join(out)


def _amp_parse(data):
    """The boxes data holds, one after another."""
    boxes, box, key, pos = [], {}, None, 0
    while pos < len(data):
        n = struct.unpack_from("!H", data, pos)[0]
        item, pos = data[pos + 2:pos + 2 + n], pos + 2 + n
        if key is not None:
            box[key], key = item, None
        elif n == 0:
            boxes.append(box)
            box = {}
        else:
            key = item
    return boxes


def _amp_encode(params, values):
    box = {}
    for name, arg in params:
        key = name.decode("ascii") if isinstance(name, bytes) else name
        if key not in values:
            if arg.optional:
                continue
            raise KeyError("AMP value %r is missing" % (key,))
        box[key.encode("ascii")] = arg.toString(values[key])
    return box


def _amp_decode(params, box):
    values = {}
    for name, arg in params:
        bname = name if isinstance(name, bytes) else name.encode("ascii")
        if bname not in box:
            if arg.optional:
                continue
            raise KeyError("AMP argument %r is missing" % (bname.decode(),))
        values[bname.decode("ascii")] = arg.fromString(box[bname])
    return values


class _AmpRemoteError(Exception):
    """A declared error, answered with its code."""


class _CommandMeta(type):
    def __new__(mcs, name, bases, attrs):
        cls = super().__new__(mcs, name, bases, attrs)
        if "commandName" not in attrs:
            cls.commandName = name.encode("ascii")
        return cls


class _Command(metaclass=_CommandMeta):
    """An AMP command, declared as with Twisted: arguments and response
    are lists of (name, argument type); errors maps exception classes to
    error codes."""

    arguments = []
    response = []
    errors = {}
    fatalErrors = {}
    requiresAnswer = True

    @classmethod
    def responder(cls, func):
        func._torsion_amp_command = cls
        return func


class _CommandLocator:
    """Answers the commands whose responders its methods are, as Twisted's
    CommandLocator does."""

    def _responders(self):
        found = {}
        for klass in reversed(type(self).__mro__):
            for attr in vars(klass).values():
                cmd = getattr(attr, "_torsion_amp_command", None)
                if cmd is not None:
                    found[cmd.commandName] = (cmd, attr)
        return found

    def _answer(self, wire):
        """Runs the command wire holds; returns (status, payload):
        0 and the response box, 2 and a declared error's box."""
        box = _amp_parse(wire)[0]
        name = box.pop(b"_command")
        found = self._responders().get(name)
        if found is None:
            return 2, _amp_serialize({b"_error_code": b"UNHANDLED",
                                      b"_error_description": ("Unhandled Command: %r" % (name,)).encode()})
        cmd, func = found
        try:
            result = func(self, **_amp_decode(cmd.arguments, box))
        except Exception as e:
            for klass, code in list(cmd.errors.items()) + list(cmd.fatalErrors.items()):
                if isinstance(e, klass):
                    return 2, _amp_serialize({b"_error_code": code, b"_error_description": str(e).encode("utf-8", "replace")})
            raise
        return 0, _amp_serialize(_amp_encode(cmd.response, result or {}))


AMP = types.ModuleType("torsion.amp", """torsion.amp: AMP commands declared as
with twisted.protocols.amp (Command, CommandLocator and the argument types),
for the locator of torsion web --amp, which the application registers with
torsion.locator(). Replace `from twisted.protocols import amp` with
`from torsion import amp`.""")
AMP.Command, AMP.CommandLocator = _Command, _CommandLocator
AMP.Integer, AMP.String, AMP.Float, AMP.Boolean, AMP.Unicode = _Integer, _String, _Float, _Boolean, _Unicode
AMP.Decimal, AMP.DateTime, AMP.ListOf, AMP.AmpList = _Decimal, _DateTime, _ListOf, _AmpList

TORSION = Torsion()
TORSION.amp = AMP


class StartupFailed(Exception):
    """The application's lifespan startup failed."""


def asgi_headers(message):
    """The headers of an ASGI message, as the str pairs encode_head takes."""
    return [(bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in message.get("headers", ())]


def asgi_head(message):
    """The status line and headers of an ASGI response start."""
    status = message["status"]
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return "%d %s" % (status, phrase), asgi_headers(message)


HEADER_NAMES = {}  # environ key -> ASGI header name, for the names seen


def asgi_scope(environ, state):
    """The ASGI HTTP scope of a request, made from the environ torsion
    sends (PROTOCOL.md); header names come back lower-cased with dashes,
    as torsion refuses names with underscores."""
    headers = []
    names = HEADER_NAMES
    for k, v in environ.items():
        if k.startswith("HTTP_"):
            name = names.get(k)
            if name is None:
                name = k[5:].replace("_", "-").lower().encode("latin-1")
                if len(names) < 1024:  # a client's made-up names do not grow it for ever
                    names[k] = name
            headers.append((name, v.encode("latin-1")))
    if "CONTENT_TYPE" in environ:
        headers.append((b"content-type", environ["CONTENT_TYPE"].encode("latin-1")))
    if "CONTENT_LENGTH" in environ:
        headers.append((b"content-length", environ["CONTENT_LENGTH"].encode("latin-1")))
    # The path below the mount point, as uvicorn behind a proxy that
    # strips the prefix gives it: what Starlette before 0.35 routes on, and
    # what later versions take as well.
    root = environ.get("SCRIPT_NAME", "")
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
    raw = environ.get("REQUEST_URI", "").split("?", 1)[0]
    client = None
    if "REMOTE_ADDR" in environ:
        client = (environ["REMOTE_ADDR"], int(environ.get("REMOTE_PORT") or 0))
    proto = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": {"HTTP/1.0": "1.0", "HTTP/2.0": "2"}.get(proto, "1.1"),
        "method": environ["REQUEST_METHOD"],
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "path": path,
        "raw_path": raw.encode("latin-1"),
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "root_path": root.encode("latin-1").decode("utf-8", "replace"),
        "headers": headers,
        "client": client,
        "server": (environ.get("SERVER_NAME", ""), int(environ.get("SERVER_PORT") or 0)),
        "state": dict(state),
        "extensions": {"http.response.pathsend": {}, "http.response.trailers": {}},
    }


WS_TEXT, WS_BINARY = 1, 2  # the type byte of a WebSocket message (PROTOCOL.md)
WS_TEXT_BYTE, WS_BINARY_BYTE = bytes([WS_TEXT]), bytes([WS_BINARY])
MAX_PAYLOAD = 16 << 20  # a frame's payload, at most (torsion's maxPayload)
BEAT = 0.25  # the ASGI event loop's heartbeat
BLOCKED = 2.0  # a loop that misses its heartbeat this long is reported


async def sent(st, r, n):
    """Counts n bytes sent for request r (st.unacked) and, while more than
    WINDOW are unacknowledged, waits for torsion's W frames: the ASGI side
    of the flow control, for bodies and WebSocket messages alike."""
    st.unacked += n
    while st.unacked > WINDOW and not r.gone.is_set():
        got = await r.acks.get()
        if got is not None:
            st.unacked -= got


class HTTPCycle:
    """One HTTP request of an ASGI application, as uvicorn's
    RequestResponseCycle: receive() and send() over the request's frames,
    with its state explicit. r is the request's inboxes (Asgi.on_request)."""

    def __init__(self, conn, rid, r, first, more):
        self.conn, self.rid, self.r = conn, rid, r
        self.first = first  # the body's first bytes, until received
        self.more = bool(more)  # more body to pull from torsion
        self.head = None  # (status line, headers) once http.response.start came
        self.trailers = False  # announced by http.response.start
        self.sent = False  # S has gone
        self.body_done = False  # the body ended; its E waits for the trailers
        self.ended = False  # E has gone
        self.fields = []  # the trailers so far
        self.unacked = 0  # body bytes torsion has not acknowledged (sent())

    async def receive(self):
        r = self.r
        if self.first is not None:
            first, self.first = self.first, None
            return {"type": "http.request", "body": first, "more_body": self.more}
        if self.more and not r.gone.is_set():
            self.conn.send(read_frame(self.rid, 65536))
            data = await r.body.get()
            if data is None or type(data) is BodyError:
                self.more = False
                return {"type": "http.disconnect"}
            self.more = bool(data)
            return {"type": "http.request", "body": data, "more_body": self.more}
        await r.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message):
        kind = message["type"]
        if self.r.gone.is_set():
            return  # the client left: what it would have got goes nowhere
        handler = self.SENDS.get(kind)
        if handler is None:
            raise RuntimeError("unknown ASGI message type %r" % (kind,))
        if handler(self, message):  # the window is full
            await sent(self, self.r, 0)

    # The handlers of send(), by message type (SENDS); each reports
    # whether torsion must acknowledge more before the next send.

    def start(self, message):
        if self.head is not None:
            raise RuntimeError("http.response.start sent twice")
        self.head = asgi_head(message)
        self.trailers = bool(message.get("trailers", False))

    def body(self, message):
        if self.head is None:
            raise RuntimeError("http.response.body before http.response.start")
        if self.ended or self.body_done:
            raise RuntimeError("http.response.body after the response ended")
        body = message.get("body", b"")
        out = b""
        if not self.sent:
            self.sent = True
            out = frame(START, self.rid, encode_head(*self.head))
        if body:
            out += data_frames(self.rid, bytes(body))
        if not message.get("more_body", False):
            if self.trailers:
                self.body_done = True  # E goes with the trailers
            else:
                self.ended = True
                out += end_frame(self.rid)
        self.conn.send(out)
        self.unacked += len(body)
        return self.unacked > WINDOW

    def send_trailers(self, message):
        # The trailers extension: they travel as E's payload.
        if not self.trailers:
            raise RuntimeError("http.response.trailers without trailers=True in http.response.start")
        if not self.body_done or self.ended:
            raise RuntimeError("http.response.trailers before the body ended, or after the trailers")
        self.fields += asgi_headers(message)
        if not message.get("more_trailers", False):
            self.ended = True
            self.conn.send(end_frame(self.rid, self.fields))

    def pathsend(self, message):
        # The zero-copy extension: torsion sends the file itself.
        if self.head is None:
            raise RuntimeError("http.response.pathsend before http.response.start")
        if self.sent:
            raise RuntimeError("http.response.pathsend after the body began")
        path = message["path"]
        if not os.path.isabs(path):
            raise ValueError("http.response.pathsend wants an absolute path, not %r" % (path,))
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ValueError("http.response.pathsend: %s is not a regular file" % path)
            self.sent = self.ended = True
            self.conn.send_fd(frame(START, self.rid, encode_head(*self.head)) + file_frame(self.rid, 0) + end_frame(self.rid), f.fileno())

    SENDS = {"http.response.start": start, "http.response.body": body,
             "http.response.trailers": send_trailers, "http.response.pathsend": pathsend}

    async def returned(self):
        """The application returned: what it left unsaid is ended."""
        if self.ended or self.r.gone.is_set():
            return
        if self.head is None:
            raise RuntimeError("the application returned without sending a response")
        if self.body_done:  # announced trailers, sent none
            self.ended = True
            self.conn.send(end_frame(self.rid))
        else:
            await self.send({"type": "http.response.body", "body": b""})


class WebSocketCycle:
    """One WebSocket connection of an ASGI application (PROTOCOL.md):
    torsion holds the client's socket and passes messages as frames;
    receive() and send() over them, with the state explicit."""

    def __init__(self, conn, rid, r):
        self.conn, self.rid, self.r = conn, rid, r
        self.connect = True  # websocket.connect not yet received
        self.accepted = False
        self.ended = False  # E has gone
        self.closed = None  # (code, reason) once the client closed or left
        self.denial = None  # the websocket.http.response.start of a refusal
        self.unacked = 0  # message bytes torsion has not acknowledged (sent())
        self.answered = asyncio.Event()  # the application accepted, or ended the connection
        self.read_next = read_frame(rid, 0)  # asks torsion for the client's next message

    def end(self, payload=b""):
        self.ended = True
        self.answered.set()
        self.conn.send(frame(END, self.rid, payload))

    def deny(self):
        """Refuses the handshake with 403."""
        self.conn.send(frame(START, self.rid, encode_head("403 Forbidden", [("Content-Length", "0")])))
        self.end()

    async def receive(self):
        r = self.r
        if self.connect:
            self.connect = False
            return {"type": "websocket.connect"}
        if not self.answered.is_set() and not r.gone.is_set():
            # Asked before the application answered the connect (Quart
            # pumps receive in a task of its own): the next message
            # comes once it has accepted.
            waits = [asyncio.ensure_future(self.answered.wait()), asyncio.ensure_future(r.gone.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
        if self.closed is None and self.accepted and not r.gone.is_set():
            self.conn.send(self.read_next)
            item = await r.body.get()
            if item is None or type(item) is BodyError:
                self.closed = (1006, "")
            elif item[0] == WS_TEXT:
                return {"type": "websocket.receive", "text": str(memoryview(item)[1:], "utf-8")}
            elif item[0] == WS_BINARY:
                return {"type": "websocket.receive", "bytes": bytes(item[1:])}
            else:
                code = int.from_bytes(item[1:3], "big") if len(item) >= 3 else 1005
                self.closed = (code, bytes(item[3:]).decode("utf-8", "replace"))
        if self.closed is None:
            await r.gone.wait()
            self.closed = (1006, "")
        return {"type": "websocket.disconnect", "code": self.closed[0], "reason": self.closed[1]}

    async def send(self, message):
        kind = message["type"]
        if self.ended or (kind == "websocket.send" and (self.closed is not None or self.r.gone.is_set())):
            raise OSError("the WebSocket is closed")
        handler = self.SENDS.get(kind)
        if handler is None:
            raise RuntimeError("unknown ASGI message type %r" % (kind,))
        if handler(self, message):  # the window is full
            await sent(self, self.r, 0)

    # The handlers of send(), by message type (SENDS); each reports
    # whether torsion must acknowledge more before the next send.

    def accept(self, message):
        if self.accepted or self.denial is not None:
            raise RuntimeError("websocket.accept sent twice, or after a denial")
        headers = asgi_headers(message)
        if message.get("subprotocol"):
            headers.append(("Sec-WebSocket-Protocol", message["subprotocol"]))
        self.conn.send(frame(START, self.rid, encode_head("101 Switching Protocols", headers)))
        self.accepted = True
        self.answered.set()

    def send_message(self, message):
        if not self.accepted:
            raise RuntimeError("websocket.send before websocket.accept")
        text = message.get("text")
        if text is not None:
            tag, data = WS_TEXT_BYTE, text.encode("utf-8")
        else:
            tag, data = WS_BINARY_BYTE, bytes(message["bytes"])
        n = len(data) + 1
        if n > MAX_PAYLOAD:
            raise ValueError("a WebSocket message is limited to %d bytes" % (MAX_PAYLOAD - 1))
        # Three parts, joined once as the turn's frames leave.
        conn = self.conn
        conn.send(HEADER.pack(DATA, self.rid, n))
        conn.send(tag)
        conn.send(data)
        self.unacked += n
        return self.unacked > WINDOW

    def close(self, message):
        if self.accepted:
            reason = (message.get("reason") or "").encode("utf-8")[:123]
            self.end(int(message.get("code", 1000)).to_bytes(2, "big") + reason)
        else:  # a close before accept denies the handshake
            self.deny()

    def denial_start(self, message):
        if self.accepted or self.denial is not None:
            raise RuntimeError("websocket.http.response.start after accept or twice")
        self.denial = message
        self.conn.send(frame(START, self.rid, encode_head(*asgi_head(message))))

    def denial_body(self, message):
        if self.denial is None:
            raise RuntimeError("websocket.http.response.body before websocket.http.response.start")
        body = message.get("body", b"")
        if body:
            self.conn.send(data_frames(self.rid, bytes(body)))
        if not message.get("more_body", False):
            self.end()

    SENDS = {"websocket.accept": accept, "websocket.send": send_message, "websocket.close": close,
             "websocket.http.response.start": denial_start, "websocket.http.response.body": denial_body}

    def returned(self):
        """The application returned: a connection it left open is closed
        (1000), one it neither accepted nor refused is refused."""
        if self.ended:
            return
        if self.accepted:
            self.end((1000).to_bytes(2, "big"))
        elif self.denial is None:
            self.deny()


class Batched:
    """The ASGI loop's writes to torsion: the frames written during one turn
    of the event loop leave together, in one send(2), at its end (a
    WebSocket's message and its next read request, the responses of
    several tasks)."""

    def __init__(self, conn, loop):
        self.conn, self.loop = conn, loop
        self.out = []

    def send(self, data):
        if not self.out:
            self.loop.call_soon(self.flush)
        self.out.append(data)

    def send_fd(self, data, fd):
        self.flush()
        self.conn.send_fd(data, fd)

    def flush(self):
        if self.out:
            data = b"".join(self.out)
            self.out.clear()
            self.conn.send(data)


class Asgi(Router):
    """Runs an ASGI 3 application on one asyncio event loop: each request
    is a task, at most limit at a time, started in the order torsion sent
    them (torsion counts on that order, as with threads). The loop itself
    watches the socket and reads torsion's frames when they come."""

    def __init__(self, app, conn, limit):
        self.app, self.conn, self.limit = app, conn, limit
        self.pending = collections.deque()
        self.running = 0
        self.requests = {}  # rid -> its inboxes, while it lives
        self.state = {}  # the lifespan state, copied into each scope
        self.closing = None

    def run(self, ready):
        """Runs the lifespan startup, calls ready(), serves until torsion
        closes the socket, then runs the lifespan shutdown."""
        try:
            asyncio.run(self.main(ready))
        except StartupFailed as e:
            print("the application's lifespan startup failed: %s" % e, file=sys.stderr)
            sys.exit(3)

    async def main(self, ready):
        self.loop = asyncio.get_running_loop()
        self.out = Batched(self.conn, self.loop)
        self.closing = self.loop.create_future()
        lifespan = await self.startup()
        ready()
        self.loop.add_reader(self.conn.sock.fileno(), self.readable)
        self.beat = time.monotonic()
        self.loop.call_soon(self.heartbeat)
        threading.Thread(target=self.watch_loop, args=(threading.get_ident(),), daemon=True).start()
        await self.closing
        if lifespan is not None:
            await self.shutdown(lifespan)

    def heartbeat(self):
        self.beat = time.monotonic()
        self.loop.call_later(BEAT, self.heartbeat)

    def watch_loop(self, loop_thread):
        """Logs, once per stall, an event loop that synchronous code has
        held for BLOCKED seconds, with where that code is: every request
        of the worker waits meanwhile."""
        reported = 0.0
        while True:
            time.sleep(BEAT)
            beat = self.beat
            stalled = time.monotonic() - beat
            if stalled >= BLOCKED and reported != beat:
                reported = beat
                frame_ = sys._current_frames().get(loop_thread)
                stack = "".join(traceback.format_stack(frame_)) if frame_ is not None else "(no stack)\n"
                self.conn.send(text_frame(LOG, 0, "the event loop has been blocked for %.1fs by synchronous code; "
                                                  "every request of this worker waits:\n%s" % (stalled, stack)))

    def readable(self):
        """Reads what torsion sent, without waiting, and routes it: no
        thread hands frames over, so no wake-up crosses threads."""
        try:
            frames = self.conn.read(block=False)
        except (EOFError, ConnectionError, OSError):
            self.loop.remove_reader(self.conn.sock.fileno())
            self.close()
            return
        if frames:
            self.route(frames)

    def close(self):
        if not self.closing.done():
            self.closing.set_result(None)

    # The frames torsion sends (Router.ROUTES); one for a request that has
    # ended is dropped.

    def on_request(self, rid, payload):
        self.requests[rid] = r = types.SimpleNamespace(
            body=asyncio.Queue(), acks=asyncio.Queue(), gone=asyncio.Event(), task=None, socket=False)
        self.pending.append((rid, payload, r))

    def on_cancel(self, rid, payload):
        r = self.requests.get(rid)
        if r is not None:
            r.gone.set()
            r.body.put_nowait(None)
            r.acks.put_nowait(None)
            if payload == TIMEOUT and r.task is not None:
                r.task.cancel()  # torsion's --timeout: it answers 504

    def on_window(self, rid, payload):
        r = self.requests.get(rid)
        if r is not None:
            r.acks.put_nowait(window_count(payload))

    def on_body_error(self, rid, payload):
        r = self.requests.get(rid)
        if r is not None:
            r.body.put_nowait(BodyError(payload))

    def on_body(self, rid, payload):
        r = self.requests.get(rid)
        if r is not None:
            r.body.put_nowait(payload)

    def routed(self):
        self.admit()

    def admit(self):
        while self.running < self.limit and self.pending:
            rid, payload, r = self.pending.popleft()
            self.running += 1
            r.task = self.loop.create_task(self.handle(rid, payload, r))

    async def handle(self, rid, payload, r):
        more, first, environ = parse_request(payload)
        scope = asgi_scope(environ, self.state)
        if scope["method"] == "GET" and "websocket" in environ.get("HTTP_UPGRADE", "").lower():
            return await self.websocket(rid, scope, r)
        cycle = HTTPCycle(self.out, rid, r, first, more)
        try:
            await self.app(scope, cycle.receive, cycle.send)
            await cycle.returned()
        except Exception:
            self.out.send(text_frame(ERROR, rid, traceback.format_exc()))
        finally:
            self.finish(rid, cycle.ended)

    async def websocket(self, rid, scope, r):
        """Runs a WebSocket connection (PROTOCOL.md): torsion holds the
        client's socket and passes messages as frames."""
        # A WebSocket runs beside the limit's requests, not in their place
        # (torsion does not count it either, PROTOCOL.md): its place goes
        # to the next request at once.
        r.socket = True
        self.running -= 1
        self.admit()
        del scope["method"]
        scope["type"] = "websocket"
        scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
        offered = dict(scope["headers"]).get(b"sec-websocket-protocol", b"").decode("latin-1")
        scope["subprotocols"] = [p.strip() for p in offered.split(",") if p.strip()]
        scope["extensions"] = {"websocket.http.response": {}}
        cycle = WebSocketCycle(self.out, rid, r)
        try:
            await self.app(scope, cycle.receive, cycle.send)
            cycle.returned()
        except Exception:
            self.out.send(text_frame(ERROR, rid, traceback.format_exc()))
        finally:
            self.finish(rid, cycle.ended)

    def finish(self, rid, ended):
        """Ends a request (with E, unless it was sent) and starts the next."""
        if not ended:
            self.out.send(end_frame(rid))
        r = self.requests.pop(rid, None)
        if r is None or not r.socket:
            self.running -= 1
            self.admit()

    async def startup(self):
        """Runs the lifespan protocol's startup; returns the running
        lifespan, or None if the application does not take part in it."""
        inbox = asyncio.Queue()
        started, stopped = self.loop.create_future(), self.loop.create_future()

        async def receive():
            return await inbox.get()

        async def send(message):
            kind = message["type"]
            if kind == "lifespan.startup.complete":
                started.set_result(True)
            elif kind == "lifespan.startup.failed":
                started.set_exception(StartupFailed(message.get("message", "")))
            elif kind == "lifespan.shutdown.complete":
                stopped.set_result(True)
            elif kind == "lifespan.shutdown.failed":
                stopped.set_exception(RuntimeError(message.get("message", "")))

        async def run():
            try:
                await self.app({"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                                "state": self.state}, receive, send)
            except Exception:
                if not started.done():  # it does not do lifespan: fine, as with uvicorn
                    started.set_result(False)
                elif not stopped.done():
                    stopped.set_exception(RuntimeError(traceback.format_exc()))
            else:
                if not started.done():
                    started.set_result(False)

        inbox.put_nowait({"type": "lifespan.startup"})
        task = self.loop.create_task(run())
        if not await started:
            return None
        return (inbox, stopped, task)

    async def shutdown(self, lifespan):
        inbox, stopped, task = lifespan
        inbox.put_nowait({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(stopped, 30)
        except Exception:
            traceback.print_exc()


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
    from the application's first frame on: this file's and importlib's
    frames say nothing to its author."""
    tb = e.__traceback__
    while tb is not None and (tb.tb_frame.f_code.co_filename in (__file__, importlib.__file__)
                              or tb.tb_frame.f_code.co_filename.startswith("<frozen importlib")):
        tb = tb.tb_next
    traceback.print_exception(type(e), e, tb)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--app", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--fd", type=int, default=3)
    p.add_argument("--control-fd", type=int, default=-1)
    p.add_argument("--interface", choices=("wsgi", "asgi"), default="wsgi")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--probe", action="store_true", help="print whether the application is wsgi or asgi, and exit")
    args = p.parse_args()
    # torsion handles ^C and SIGTERM and closes our socket when it is time.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.path.insert(0, os.getcwd())
    sys.modules["torsion"] = TORSION
    sys.modules["torsion.amp"] = AMP
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
