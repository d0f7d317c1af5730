"""The frames of the worker protocol (PROTOCOL.md, beside the package):
their kinds, the payload of each kind written or read by one function,
the socket to torsion that carries them (Conn), and Router, the one
dispatch table from a kind to the method that takes it."""

import array
import marshal
import os
import re
import socket
import struct
import sys
import threading



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
MAX_PAYLOAD = 16 << 20  # a frame's payload, at most (torsion's maxPayload)
MAX_DATA = 1 << 20  # body data per frame; tracebacks and log lines are cut to it
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
