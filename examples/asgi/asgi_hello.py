"""A plain ASGI 3 application, no framework: the lifespan protocol sets a
greeting, and every request is answered with what it asked, streamed in
two pieces.

    torsion web --asgi asgi_hello:app --chdir examples/asgi
"""
import asyncio

inside = 0  # requests inside /together right now
together = asyncio.Event()


async def app(scope, receive, send):
    global inside
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "Hello from ASGI"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/fail":
        raise ValueError("the application failed on purpose")
    if scope["path"].startswith("/together/"):
        # Answers once N requests are inside at once: they only can be if
        # the worker runs them concurrently.
        inside += 1
        if inside >= int(scope["path"].rsplit("/", 1)[1]):
            together.set()
        await together.wait()
    text = "%s\n%s %s %s root=%s q=%s body=%d\n" % (
        scope["state"].get("greeting"), scope["method"], scope["path"], scope["http_version"],
        scope["root_path"], scope["query_string"].decode(), len(body))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": text.encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"end\n"})
