"""A WebSocket echo in plain ASGI: it accepts the first subprotocol the
client offers, echoes text and bytes, closes with 4001 on "close", and
refuses /deny (403).

    torsion web --asgi ws_echo:app --chdir examples/asgi
    python3 -m websockets ws://127.0.0.1:8080/
"""


async def app(scope, receive, send):
    if scope["type"] == "http":  # a page saying what this is
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"A WebSocket echo: connect with ws://\n"})
        return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    if scope["path"] == "/deny":
        await send({"type": "websocket.close"})
        return
    offered = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    if scope["path"] == "/push":
        for i in range(3):
            await send({"type": "websocket.send", "text": "push %d" % i})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "close":
            await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
