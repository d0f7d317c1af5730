"""ASGI 3: the application on an asyncio event loop, each HTTP request
an HTTPCycle and each WebSocket a WebSocketCycle, classes whose fields
hold the state of the exchange, with the lifespan protocol around them."""

import asyncio
import collections
import http
import os
import stat
import sys
import threading
import time
import traceback

from .frames import DATA, END, ERROR, HEADER, LOG, MAX_PAYLOAD, Router, START, TIMEOUT, WINDOW, data_frames, encode_head, end_frame, file_frame, frame, parse_request, read_frame, text_frame, window_count
from .wsgi import BodyError


def awaiting(coro):
    """The stack of a suspended coroutine, as traceback formats one:
    its frame, then the frame of what it awaits, and so on down to the
    innermost (Task.get_stack gives only the first)."""
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append((frame, frame.f_lineno))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return traceback.StackSummary.extract(frames).format()


class StartupFailed(Exception):
    """The application's lifespan startup failed."""


def asgi_headers(message):
    """The headers of an ASGI message, as the str pairs encode_head takes."""
    return [(bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in message.get("headers", ())]


STATUS_LINES = {}  # status -> its line, for the statuses seen


def asgi_head(message):
    """The status line and headers of an ASGI response start."""
    status = message["status"]
    line = STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = http.HTTPStatus(status).phrase
        except ValueError:
            phrase = "Unknown"
        line = "%d %s" % (status, phrase)
        if len(STATUS_LINES) < 1024:
            STATUS_LINES[status] = line
    return line, asgi_headers(message)


HEADER_NAMES = {}  # environ key -> its ASGI header name, or b"" if it is no header; for the keys seen


def header_name(key):
    """The ASGI header name of an environ key (HTTP_X_ID: b"x-id"), or b""
    for a key that names no header."""
    name = key[5:].replace("_", "-").lower().encode("latin-1") if key.startswith("HTTP_") else b""
    if len(HEADER_NAMES) < 1024:  # a client's made-up names do not grow it for ever
        HEADER_NAMES[key] = name
    return name


def asgi_scope(environ, state):
    """The ASGI HTTP scope of a request, made from the environ torsion
    sends (PROTOCOL.md); header names come back lower-cased with dashes,
    as torsion refuses names with underscores."""
    headers = []
    names = HEADER_NAMES
    for k, v in environ.items():
        name = names.get(k)
        if name is None:
            name = header_name(k)
        if name:
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
BEAT = 0.25  # the ASGI event loop's heartbeat
BLOCKED = 2.0  # a loop that misses its heartbeat this long is reported


class Inboxes:
    """What torsion sends a request, as the cycles wait for it: its body
    (and a WebSocket's messages), the acknowledgements of what it sent,
    and whether its client left. The queues and the event are made when
    first used: most requests need none of them. One made after the client
    left holds what it would have been told (None; set)."""

    __slots__ = ("_body", "_acks", "_gone", "left", "task", "socket")

    def __init__(self):
        self._body = self._acks = self._gone = None
        self.left = False  # the client left, or the request was cancelled
        self.task = None
        self.socket = False

    @property
    def body(self):
        if self._body is None:
            self._body = self._queue()
        return self._body

    @property
    def acks(self):
        if self._acks is None:
            self._acks = self._queue()
        return self._acks

    def _queue(self):
        """A new inbox: ended already (None) if the client left."""
        q = asyncio.Queue()
        if self.left:
            q.put_nowait(None)
        return q

    @property
    def gone(self):
        """An event set when the client leaves, for awaiting it."""
        if self._gone is None:
            self._gone = asyncio.Event()
            if self.left:
                self._gone.set()
        return self._gone

    def leave(self):
        self.left = True
        if self._gone is not None:
            self._gone.set()
        if self._body is not None:
            self._body.put_nowait(None)
        if self._acks is not None:
            self._acks.put_nowait(None)


async def sent(st, r, n):
    """Counts n bytes sent for request r (st.unacked) and, while more than
    WINDOW are unacknowledged, waits for torsion's W frames: the ASGI side
    of the flow control, for bodies and WebSocket messages alike."""
    st.unacked += n
    while st.unacked > WINDOW and not r.left:
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
        if self.more and not r.left:
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
        if self.r.left:
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
        if self.ended or self.r.left:
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
        if not self.answered.is_set() and not r.left:
            # Asked before the application answered the connect (Quart
            # pumps receive in a task of its own): the next message
            # comes once it has accepted.
            waits = [asyncio.ensure_future(self.answered.wait()), asyncio.ensure_future(r.gone.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
        if self.closed is None and self.accepted and not r.left:
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
        if self.ended or (kind == "websocket.send" and (self.closed is not None or self.r.left)):
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
        self.requests[rid] = r = Inboxes()
        self.pending.append((rid, payload, r))

    def on_cancel(self, rid, payload):
        r = self.requests.get(rid)
        if r is not None:
            r.leave()
            if payload == TIMEOUT and r.task is not None:
                # torsion's --timeout: it answers 504. Where the task was
                # goes to the log first, with the request.
                self.conn.send(text_frame(LOG, rid, "the request's task ran past --timeout and is cancelled; it was at:\n"
                                          + "".join(awaiting(r.task.get_coro()))))
                r.task.cancel()

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
