"""WSGI applications for torsion's tests: each exercises one part of PEP 3333."""
import hashlib
import json
import os
import sys
import tempfile
import time
import wsgiref.validate


def hello(environ, start_response):
    body = b"Hello, world!\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def environ(environ, start_response):
    out = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))}
    out["wsgi.input"] = type(environ["wsgi.input"]).__name__
    out["pid"] = os.getpid()
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def upload(environ, start_response):
    """Reads the body in pieces and answers its size and sha256, so a
    big upload never sits whole in memory."""
    h, n, inp = hashlib.sha256(), 0, environ["wsgi.input"]
    while True:
        chunk = inp.read(65536)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    body = ("%d %s" % (n, h.hexdigest())).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]


def lines(environ, start_response):
    inp = environ["wsgi.input"]
    got = [inp.readline(), inp.readline(5), inp.read(3)] + inp.readlines()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps([g.decode() for g in got]).encode()]


def stream(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/event-stream")])

    def events():
        for i in range(3):
            yield ("data: %d %f\n\n" % (i, time.time())).encode()
            time.sleep(0.3)
    return events()


def writer(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written, ")
    return [b"returned"]


def lazy_start(environ, start_response):
    """start_response called during the first iteration, as PEP 3333 allows."""
    def body():
        start_response("201 Created", [("X-Lazy", "yes")])
        yield b""
        yield b"late"
    return body()


def exc_info(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("oops")
    except ValueError:
        start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"replaced"]


def boom(environ, start_response):
    raise RuntimeError("boom from the app")


def boom_midway(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"first part"
        raise RuntimeError("boom midway")
    return body()


def bad_status(environ, start_response):
    start_response("OK", [])
    return [b"x"]


def bad_header(environ, start_response):
    start_response("200 OK", [("X-Bad", "a\r\nInjected: yes")])
    return [b"x"]


def hop_by_hop(environ, start_response):
    """Connection: close is obeyed; other hop-by-hop fields are dropped."""
    start_response("200 OK", [("Connection", "close"), ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "gzip"),
                              ("Content-Type", "text/plain")])
    return [b"x"]


def length_mismatch(environ, start_response):
    """Declares a Content-Length that its body does not keep to."""
    declared, body = {"/short": ("100", b"only ten b"), "/long": ("5", b"more than five"),
                      "/twice": ("5", b"hello"), "/bad": ("5x", b"hello")}[environ["PATH_INFO"]]
    headers = [("Content-Length", declared)]
    if environ["PATH_INFO"] == "/twice":
        headers.append(("Content-Length", "100"))
    start_response("200 OK", headers)
    return iter([body])


def no_start(environ, start_response):
    return [b"x"]


def returns_str(environ, start_response):
    start_response("200 OK", [])
    return ["not bytes"]


def returns_bytes(environ, start_response):
    start_response("200 OK", [])
    return b"a body, not an iterable of them"


def crash(environ, start_response):
    os._exit(7)


def crash_leaving_child(environ, start_response):
    """Dies, leaving behind a process that holds the worker's output pipe;
    the query string names a file for that process's pid."""
    if environ["PATH_INFO"] == "/crash":
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        with open(environ["QUERY_STRING"], "w") as f:
            f.write(str(child.pid))
        os._exit(7)
    start_response("200 OK", [])
    return [b"alive"]


def slow(environ, start_response):
    time.sleep(float(environ.get("QUERY_STRING") or "0.5"))
    start_response("200 OK", [])
    return [str(os.getpid()).encode()]


def spin(environ, start_response):
    while True:  # an endless loop in Python: only a kill ends it
        pass


def pid(environ, start_response):
    start_response("200 OK", [])
    return [str(os.getpid()).encode()]


FILE = os.path.join(tempfile.gettempdir(), "torsion-test-file-%d.bin" % os.getppid())


def file_wrapper(environ, start_response):
    size = os.path.getsize(FILE)
    f = open(FILE, "rb")
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))])
    return environ["wsgi.file_wrapper"](f, 65536)


def log_errors(environ, start_response):
    environ["wsgi.errors"].write("a line for the log\n")
    print("joined", "by print", file=environ["wsgi.errors"])
    environ["wsgi.errors"].write("a line in ")
    environ["wsgi.errors"].write("two writes\nand an unfinished one")
    print("printed to stdout", flush=True)
    start_response("200 OK", [])
    return [b"logged"]


def long_line(environ, start_response):
    print("x" * (3 << 20), flush=True)  # more than a pipe holds, on one line
    start_response("200 OK", [])
    return [b"printed"]


class Pausing:
    """Streams 320 KiB, pauses, sends the rest; close() takes its time."""

    def __iter__(self):
        for _ in range(5):
            yield b"x" * 65536
        time.sleep(float(self.pause))
        yield b"end"

    def close(self):
        time.sleep(float(self.pause))


def pausing(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    p = Pausing()
    p.pause = environ["QUERY_STRING"] or "1"
    return p


def big_stream(environ, start_response):
    """Streams 640 KiB, or, at /state, reports the worker's bookkeeping
    (found through gc: the application has no other way to it)."""
    import gc
    if environ["PATH_INFO"] == "/state":
        chan = [o for o in gc.get_objects() if type(o).__name__ in ("Inline", "Threaded")][0]
        start_response("200 OK", [])
        return [("inbox=%d cancelled=%d live=%d" % (len(chan.inbox), len(chan.cancelled), len(chan.live))).encode()]
    start_response("200 OK", [])
    return (b"x" * 65536 for _ in range(10))


class Tracked:
    """An iterable whose close() leaves a mark, for the disconnect test."""

    def __init__(self, path):
        self.path = path

    def __iter__(self):
        for i in range(100000):
            yield b"x" * 65536
            time.sleep(0.001)

    def close(self):
        with open(self.path, "w") as f:
            f.write("closed")


def tracked(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return Tracked(environ["QUERY_STRING"])


def _validated(environ, start_response):
    method = environ["REQUEST_METHOD"]
    body = b""
    while True:  # the validator wants read() with a size
        chunk = environ["wsgi.input"].read(65536)
        if not chunk:
            break
        body += chunk
    if environ["PATH_INFO"] == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"one ", b"two ", b"three"])
    out = ("%s %d" % (method, len(body))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))])
    return [out]


validated = wsgiref.validate.validator(_validated)


def exc_info_late(environ, start_response):
    """exc_info after the headers went out: start_response must re-raise."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"partial ")
    try:
        raise ValueError("late failure")
    except ValueError:
        start_response("500 Oops", [], sys.exc_info())
    return [b"never sent"]


# slow_restart: the first import is quick; once the marker file exists
# (the test creates it), imports take 30s, as a worker restarting into a
# slow start-up does.
_marker = os.environ.get("TORSION_TEST_SLOW_IMPORT")
if _marker and os.path.exists(_marker):
    open(_marker + ".importing", "w").close()
    time.sleep(30)


def hang_with_child(environ, start_response):
    """Starts a process, writes its pid to the file the query string
    names, and hangs past any timeout."""
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(environ["QUERY_STRING"], "w") as f:
        f.write(str(child.pid))
    time.sleep(60)


def huge_frame(environ, start_response):
    """Writes, behind worker.py's back, a frame header that announces 3 GiB:
    torsion must not believe it."""
    import struct
    os.write(3, struct.pack("<BII", ord("D"), 1, 3 << 30))
    time.sleep(60)



_hoard = []


def hog(environ, start_response):
    """Keeps 150 MiB for good when asked to (/hog); answers its pid."""
    if environ["PATH_INFO"] == "/hog":
        _hoard.append(bytearray(150 << 20))
    start_response("200 OK", [])
    return [str(os.getpid()).encode()]


def reason(environ, start_response):
    """The status line the query string names, phrase and all."""
    start_response(environ["QUERY_STRING"].replace("+", " "), [("Content-Type", "text/plain")])
    return [b"reason"]


def no_type(environ, start_response):
    """No Content-Type: the client gets none (a body that looks like HTML)."""
    start_response("200 OK", [])
    return [b"<html><body>no type given</body></html>"]
