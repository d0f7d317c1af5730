"""Tests of the worker program, the package torsion_worker, run by
TestWorkerPy under CPython and PyPy: the golden frames of frames.json
(which the Go tests check from Go), the helpers that split and cut frames,
and a real exchange with the worker on a socket pair, as torsion starts it.
Standard library only."""

import array
import json
import marshal
import os
import socket
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from torsion_worker import frames  # noqa: E402  (workers/torsion_worker)

with open(os.path.join(HERE, "frames.json")) as f:
    GOLDEN = json.load(f)


class Golden(unittest.TestCase):
    def test_version(self):
        self.assertEqual(frames.PROTOCOL_VERSION, GOLDEN["version"])

    def test_request(self):
        g = GOLDEN["request"]
        f = bytes.fromhex(g["frame"])
        kind, rid, n = frames.HEADER.unpack_from(f)
        self.assertEqual((kind, n), (frames.REQUEST, len(f) - frames.HEADER.size))
        payload = f[frames.HEADER.size:]
        body = frames.U32.unpack_from(payload, 1)[0]
        self.assertEqual(payload[0], int(g["more"]))
        self.assertEqual(payload[5:5 + body], g["body"].encode())
        self.assertEqual(marshal.loads(memoryview(payload)[5 + body:]), g["environ"])

    def test_head(self):
        g = GOLDEN["head"]
        payload = frames.encode_head(g["status"], [tuple(h) for h in g["headers"]])
        self.assertEqual(payload.hex(), g["payload"])

    def test_head_refused(self):
        for status, headers in [
            ("200", []),
            ("200 OK", [("X-A", "a\nb")]),
            ("200 OK", [("X A", "b")]),
            ("200 OK", [("Content-Length", "5"), ("Content-Length", "5")]),
            ("200 OK", [("X-A", "\u20ac")]),
        ]:
            with self.assertRaises(ValueError, msg=(status, headers)):
                frames.encode_head(status, headers)

    def test_hop_by_hop_passed(self):
        # torsion decides about hop-by-hop fields (it obeys Connection:
        # close and drops the rest), so the worker passes them on.
        self.assertIn(b"Connection", frames.encode_head("200 OK", [("Connection", "close")]))


class GoldenKinds(unittest.TestCase):
    """The golden frames of frames.json's list: the worker makes those of
    the kinds it sends (K, D, F, r, X, E, L, m) byte for byte, with the
    functions it sends them with, and reads the meaning of those it
    receives (B, Y, C, W, M). frames_test.go checks the other way round."""

    def test_sent(self):
        from unittest import mock
        for g in GOLDEN["frames"]:
            if g["to"] != "torsion":
                continue
            with self.subTest(g["name"]):
                k, rid = g["kind"], g["id"]
                if k == "K":
                    with mock.patch.object(frames.os, "getpid", return_value=g["pid"]), \
                            mock.patch.object(frames.sys, "version", g["python"] + " (main)"):
                        got = frames.ready_frame()
                elif k == "D":
                    got = frames.data_frames(rid, g["body"].encode())
                elif k == "F":
                    got = frames.file_frame(rid, g["offset"])
                elif k == "r":
                    got = frames.read_frame(rid, g["most"])
                elif k == "X":
                    got = frames.text_frame(frames.ERROR, rid, g["text"])
                elif k == "L":
                    got = frames.text_frame(frames.LOG, rid, g["text"])
                elif k == "E":
                    got = frames.end_frame(rid, [tuple(t) for t in g["trailers"]])
                elif k == "m":
                    answer = bytes.fromhex(g["answer"]) if g["status"] == 2 else g["answer"].encode()
                    got = frames.answer_frame(rid, g["status"], answer)
                else:
                    self.fail("the worker sends no %s frames" % k)
                self.assertEqual(got.hex(), g["frame"])

    def test_received(self):
        for g in GOLDEN["frames"]:
            if g["to"] != "worker":
                continue
            with self.subTest(g["name"]):
                f = bytes.fromhex(g["frame"])
                kind, rid, n = frames.HEADER.unpack_from(f)
                payload = f[frames.HEADER.size:]
                self.assertEqual((chr(kind), rid, n), (g["kind"], g["id"], len(payload)))
                k = g["kind"]
                if k == "B":
                    self.assertEqual(payload, g["body"].encode())
                elif k == "Y":
                    self.assertEqual(payload.decode(), g["text"])
                elif k == "C":
                    self.assertEqual(payload == frames.TIMEOUT, g["timeout"])
                elif k == "W":
                    self.assertEqual(frames.window_count(payload), g["count"])
                elif k == "M":
                    kind_, msg = frames.parse_control(payload)
                    if "box" in g:
                        self.assertEqual((kind_, msg.hex()), (b"A", g["box"]))
                    else:
                        self.assertEqual((kind_, msg.decode()), (b"L", g["line"]))
                else:
                    self.fail("the worker receives no %s frames" % k)

    def test_request_parsed(self):
        g = GOLDEN["request"]
        f = bytes.fromhex(g["frame"])
        more, first, environ = frames.parse_request(f[frames.HEADER.size:])
        self.assertEqual((more, first, environ), (int(g["more"]), g["body"].encode(), g["environ"]))


class Frames(unittest.TestCase):
    def test_data_split(self):
        data = bytes(range(256)) * (frames.MAX_DATA * 5 // 2 // 256)
        out, pos, got = frames.data_frames(9, data), 0, b""
        while pos < len(out):
            kind, rid, n = frames.HEADER.unpack_from(out, pos)
            self.assertEqual((kind, rid), (frames.DATA, 9))
            self.assertLessEqual(n, frames.MAX_DATA)
            got += out[pos + 9:pos + 9 + n]
            pos += 9 + n
        self.assertEqual(got, data)

    def test_text_cut(self):
        f = frames.text_frame(frames.ERROR, 3, "x" * (frames.MAX_DATA + 10))
        self.assertEqual(frames.HEADER.unpack_from(f), (frames.ERROR, 3, frames.MAX_DATA))


class Inboxes(unittest.TestCase):
    """A request's inboxes tell a cycle that its client left whenever the
    cycle first looks: before (made already) or after (made then)."""

    def test_leave(self):
        import asyncio
        from torsion_worker.asgi import Inboxes

        async def run(touch_before):
            r = Inboxes()
            if touch_before:
                r.body, r.acks, r.gone
            r.body.put_nowait(b"first") if touch_before else None
            r.leave()
            got = []
            if touch_before:
                got.append(await r.body.get())
            got.append(await asyncio.wait_for(r.body.get(), 1))
            got.append(await asyncio.wait_for(r.acks.get(), 1))
            await asyncio.wait_for(r.gone.wait(), 1)
            return r.left, got

        self.assertEqual(asyncio.run(run(True)), (True, [b"first", None, None]))
        self.assertEqual(asyncio.run(run(False)), (True, [None, None]))

    def test_fresh(self):
        from torsion_worker.asgi import Inboxes
        r = Inboxes()
        self.assertFalse(r.left)
        self.assertTrue(r.body.empty() and r.acks.empty() and not r.gone.is_set())


class Exchange(unittest.TestCase):
    """The worker as torsion runs it, spoken to over a socket pair."""

    app = "apps:hello"

    def setUp(self):
        self.sock, theirs = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "..", "torsion_worker", "__main__.py"), "--app", self.app, "--fd", str(theirs.fileno())],
            cwd=HERE, pass_fds=(theirs.fileno(),))
        theirs.close()
        self.sock.settimeout(30)
        self.buf = b""

    def tearDown(self):
        self.sock.close()  # the worker's cue to exit
        self.assertEqual(self.proc.wait(timeout=30), 0)

    fds = ()

    def frame(self):
        while True:
            if len(self.buf) >= 9:
                kind, rid, n = frames.HEADER.unpack_from(self.buf)
                if len(self.buf) >= 9 + n:
                    payload, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
                    return chr(kind), rid, payload
            data, ancdata, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
            for level, kind, fds in ancdata:
                if (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS):
                    self.fds += tuple(array.array("i", fds))
            self.assertTrue(data, "the worker closed the socket")
            self.buf += data

    def ready(self):
        kind, rid, payload = self.frame()
        self.assertEqual((kind, rid), ("K", 0))
        return payload.decode().split()

    def request(self, rid):
        f = bytearray.fromhex(GOLDEN["request"]["frame"])
        f[1:5] = rid.to_bytes(4, "little")
        self.sock.sendall(bytes(f))

    def test_request(self):
        version, pid, python = self.ready()
        self.assertEqual((int(version), int(pid)), (frames.PROTOCOL_VERSION, self.proc.pid))
        self.request(7)  # the golden request, as request 7
        head = frames.encode_head("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "14")])
        self.assertEqual(self.frame(), ("S", 7, head))
        self.assertEqual(self.frame(), ("D", 7, b"Hello, world!\n"))
        self.assertEqual(self.frame(), ("E", 7, b""))



class FileExchange(Exchange):
    """wsgi.file_wrapper: the file's descriptor comes with the F frame."""

    app = "apps:file_wrapper"

    def test_request(self):
        # apps.file_wrapper sends the file its parent, this test, names.
        path = os.path.join(tempfile.gettempdir(), "torsion-test-file-%d.bin" % os.getpid())
        with open(path, "wb") as f:
            f.write(b"file wrapper " * 1000)
        self.addCleanup(os.remove, path)
        self.ready()
        self.request(8)
        kind, rid, _ = self.frame()
        self.assertEqual((kind, rid), ("S", 8))
        kind, rid, payload = self.frame()
        self.assertEqual((kind, rid, frames.OFFSET.unpack(payload)), ("F", 8, (0,)))
        self.assertEqual(len(self.fds), 1)
        with os.fdopen(self.fds[0], "rb") as f:
            self.assertEqual(f.read(), b"file wrapper " * 1000)
        self.assertEqual(self.frame(), ("E", 8, b""))


if __name__ == "__main__":
    unittest.main()
