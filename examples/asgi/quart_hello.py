"""A Quart application (Debian's python3-quart): a page, a path parameter,
a JSON body, a streamed response and a WebSocket.

    torsion web --asgi quart_hello:app --chdir examples/asgi
"""
from quart import Quart, request, websocket

app = Quart(__name__)


@app.route("/")
async def index():
    return "Hello from Quart"


@app.route("/greet/<name>")
async def greet(name):
    return {"greeting": "Hello, %s" % name}


@app.route("/sum", methods=["POST"])
async def total():
    data = await request.get_json()
    return {"sum": sum(data["numbers"])}


@app.route("/count")
async def count():
    async def numbers():
        for i in range(3):
            yield b"%d\n" % i

    return numbers(), 200, {"Content-Type": "text/plain"}


@app.websocket("/ws")
async def echo():
    while True:
        message = await websocket.receive()
        await websocket.send("quart: %s" % message)
