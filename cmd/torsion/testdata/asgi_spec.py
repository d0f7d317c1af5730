"""An ASGI application held to the letter of the ASGI 3 specification (HTTP,
WebSocket and lifespan): it checks the type of every scope key and event, and the
order of events, and answers 200 "ok <sha256 of the body> <events>" if all
was as the specification says, else 500 with what was not. /block holds the
event loop with synchronous code; /sleep awaits. Over WebSocket it answers
each message with "ok <n> <text|bytes> <length>", or closes with 4000 and
what was not as the specification says."""
import asyncio
import hashlib
import os
import sys
import time

lifespan_seen = []


class Violation(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Violation(what)


def check_scope(scope):
    check(scope["type"] == "http", "type %r" % scope["type"])
    asgi = scope["asgi"]
    check(isinstance(asgi, dict) and asgi.get("version") == "3.0", "asgi %r" % asgi)
    check(isinstance(asgi.get("spec_version", "2.0"), str), "spec_version")
    check(scope["http_version"] in ("1.0", "1.1", "2"), "http_version %r" % scope["http_version"])
    check(isinstance(scope["method"], str) and scope["method"] == scope["method"].upper(), "method %r" % scope["method"])
    check(scope["scheme"] in ("http", "https"), "scheme %r" % scope["scheme"])
    check(isinstance(scope["path"], str) and scope["path"].startswith("/"), "path %r" % scope["path"])
    check(isinstance(scope["raw_path"], bytes), "raw_path %r" % scope["raw_path"])
    check(isinstance(scope["query_string"], bytes), "query_string %r" % scope["query_string"])
    check(isinstance(scope["root_path"], str), "root_path %r" % scope["root_path"])
    headers = scope["headers"]
    check(isinstance(headers, list), "headers %r" % type(headers))
    for h in headers:
        check(len(h) == 2 and isinstance(h[0], bytes) and isinstance(h[1], bytes), "header %r" % (h,))
        check(h[0] == h[0].lower(), "header name %r not lower-case" % h[0])
    client, server = scope["client"], scope["server"]
    check(client is None or (len(client) == 2 and isinstance(client[0], str) and isinstance(client[1], int)), "client %r" % (client,))
    check(server is None or (len(server) == 2 and isinstance(server[0], str) and isinstance(server[1], (int, type(None)))), "server %r" % (server,))
    check(scope.get("state", {}).get("started") is True, "state %r" % scope.get("state"))


async def lifespan(scope, receive, send):
    check(scope["asgi"]["version"] == "3.0", "lifespan asgi")
    message = await receive()
    check(message["type"] == "lifespan.startup", "first lifespan event %r" % message)
    lifespan_seen.append("startup")
    scope["state"]["started"] = True
    await send({"type": "lifespan.startup.complete"})
    message = await receive()
    check(message["type"] == "lifespan.shutdown", "second lifespan event %r" % message)
    await send({"type": "lifespan.shutdown.complete"})


def check_ws_scope(scope):
    check(scope["type"] == "websocket", "type %r" % scope["type"])
    check(scope["asgi"].get("version") == "3.0", "asgi %r" % scope["asgi"])
    check(scope["http_version"] in ("1.1", "2"), "http_version %r" % scope["http_version"])
    check(scope["scheme"] in ("ws", "wss"), "scheme %r" % scope["scheme"])
    check("method" not in scope, "a WebSocket scope has no method")
    check(isinstance(scope["path"], str) and scope["path"].startswith("/"), "path %r" % scope["path"])
    check(isinstance(scope["raw_path"], bytes), "raw_path %r" % scope["raw_path"])
    check(isinstance(scope["query_string"], bytes), "query_string %r" % scope["query_string"])
    check(isinstance(scope["root_path"], str), "root_path %r" % scope["root_path"])
    for h in scope["headers"]:
        check(len(h) == 2 and isinstance(h[0], bytes) and isinstance(h[1], bytes) and h[0] == h[0].lower(), "header %r" % (h,))
    check(isinstance(scope["subprotocols"], list) and all(isinstance(p, str) for p in scope["subprotocols"]),
          "subprotocols %r" % scope["subprotocols"])
    check(isinstance(scope.get("extensions", {}), dict), "extensions %r" % scope.get("extensions"))
    check(scope.get("state", {}).get("started") is True, "state %r" % scope.get("state"))


async def websocket(scope, receive, send):
    try:
        check_ws_scope(scope)
        message = await receive()
        check(message == {"type": "websocket.connect"}, "first event %r" % message)
    except Violation as e:
        await send({"type": "websocket.close", "code": 4000, "reason": str(e)[:120]})  # before accept: a 403
        return
    if scope["path"] == "/ws/refuse":
        await send({"type": "websocket.close"})  # close before accept: a 403
        return
    offered = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None, "headers": [(b"x-spec", b"ok"), (b"x-http-version", scope["http_version"].encode())]})
    n = 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            ok = isinstance(message.get("code"), int)
            print("disconnect %s %r" % (message.get("code"), message.get("reason", "")), file=sys.stderr, flush=True)
            try:
                await send({"type": "websocket.send", "text": "after the end"})
                print("send after disconnect did not raise", file=sys.stderr, flush=True)
            except OSError:
                print("send after disconnect raised OSError" if ok else "disconnect without an int code", file=sys.stderr, flush=True)
            return
        try:
            check(message["type"] == "websocket.receive", "event %r" % message["type"])
            text, data = message.get("text"), message.get("bytes")
            check((text is None) != (data is None), "exactly one of text and bytes: %r" % message)
            check(text is None or isinstance(text, str), "text %r" % type(text))
            check(data is None or isinstance(data, bytes), "bytes %r" % type(data))
        except Violation as e:
            await send({"type": "websocket.close", "code": 4000, "reason": str(e)[:120]})
            return
        n += 1
        if text == "close-me":
            await send({"type": "websocket.close", "code": 4321, "reason": "as asked"})
            return
        await send({"type": "websocket.send", "text": "ok %d %s %d" % (n, "text" if text is not None else "bytes",
                                                                      len(text if text is not None else data))})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(scope, receive, send)
    if scope["type"] == "websocket":
        return await websocket(scope, receive, send)
    status, text = 200, ""
    try:
        check_scope(scope)
        body, events = hashlib.sha256(), 0
        while True:
            message = await receive()
            check(message["type"] == "http.request", "event %r" % message.get("type"))
            check(isinstance(message.get("body", b""), bytes), "body type")
            check(isinstance(message.get("more_body", False), bool), "more_body type")
            body.update(message.get("body", b""))
            events += 1
            if not message.get("more_body", False):
                break
        if scope["path"] == "/trailers":
            # The trailers extension: two messages of them after the body.
            check(scope["extensions"]["http.response.trailers"] == {}, "extensions %r" % scope["extensions"])
            await send({"type": "http.response.start", "status": 200, "trailers": True,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"body then trailers"})
            await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")], "more_trailers": True})
            # content-length may not come after the body: torsion drops it.
            await send({"type": "http.response.trailers", "headers": [(b"x-count", b"2"), (b"content-length", b"99")]})
            return
        if scope["path"].startswith("/pathsend"):
            # The zero-copy extension: this file, sent by torsion.
            check(scope["extensions"]["http.response.pathsend"] == {}, "extensions %r" % scope["extensions"])
            path = os.path.abspath(__file__) if scope["path"] == "/pathsend" else "asgi_spec.py"
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", str(os.path.getsize(path)).encode())]})
            await send({"type": "http.response.pathsend", "path": path})
            return
        if scope["path"] == "/block":
            time.sleep(3)  # synchronous: holds the loop
        elif scope["path"] == "/sleep":
            await asyncio.sleep(0.2)
        text = "ok %s %d" % (body.hexdigest(), events)
    except Violation as e:
        status, text = 500, "violation: %s" % e
    data = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(data)).encode())]})
    for i in range(0, len(data), 7):  # several body events
        await send({"type": "http.response.body", "body": data[i:i + 7], "more_body": i + 7 < len(data)})
