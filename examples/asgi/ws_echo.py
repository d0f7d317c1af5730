"""A WebSocket echo in plain ASGI: it accepts the first subprotocol the
client offers, echoes text and bytes, answers "version" with the HTTP
version the WebSocket came over ("1.1", or "2" when a browser opened it on
an HTTP/2 connection), closes with 4001 on "close", and refuses /deny
(403). Its page at / talks to it from a browser.

    torsion web --asgi ws_echo:app --chdir examples/asgi
    python3 -m websockets ws://127.0.0.1:8080/
"""

PAGE = b"""<!doctype html>
<meta charset="utf-8">
<title>WebSocket echo</title>
<h1>WebSocket echo</h1>
<p id="status">connecting</p>
<ul id="log"></ul>
<script>
const log = (text) => {
  const li = document.createElement("li");
  li.textContent = text;
  document.getElementById("log").append(li);
};
const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws");
ws.onopen = () => {
  document.getElementById("status").textContent = "open";
  ws.send("hello");
  ws.send("version");
};
ws.onmessage = (e) => log(e.data);
ws.onclose = (e) => { document.getElementById("status").textContent = "closed " + e.code; };
</script>
"""


async def app(scope, receive, send):
    if scope["type"] == "http":  # the page
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8")]})
        await send({"type": "http.response.body", "body": PAGE})
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
        text = message.get("text")
        if text == "close":
            await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
            return
        if text == "version":
            await send({"type": "websocket.send", "text": "http_version: " + scope["http_version"]})
        elif text is not None:
            await send({"type": "websocket.send", "text": "echo: " + text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
