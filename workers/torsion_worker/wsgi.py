"""WSGI (PEP 3333): a Worker runs the application for each request, on
the main thread (Inline) or a pool of threads (Threaded), with
wsgi.input, wsgi.errors and wsgi.file_wrapper over the frames."""

import collections
import os
import queue
import stat
import threading
import time
import traceback

from .frames import ERROR, LOG, Router, START, WINDOW, data_frames, encode_head, end_frame, file_frame, frame, parse_request, read_frame, text_frame, window_count


POLL = 0.05  # how often a streaming WSGI response looks for frames from torsion


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
