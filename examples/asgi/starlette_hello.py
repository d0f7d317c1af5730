"""A Starlette application (Debian's python3-starlette) meant to be served
beside static files that torsion serves itself:

    torsion web --asgi starlette_hello:app --static /static=examples/asgi/static --chdir examples/asgi

Its page links /static/style.css, which never reaches Python.
"""
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute


async def home(request):
    return HTMLResponse('<!doctype html><link rel="stylesheet" href="/static/style.css"><h1>Hello from Starlette</h1>\n')


async def user(request):
    return JSONResponse({"user": request.path_params["name"], "root_path": request.scope.get("root_path", "")})


async def ticks(request):
    async def lines():
        for i in range(3):
            yield "tick %d\n" % i

    return StreamingResponse(lines(), media_type="text/plain")


async def shout(ws):
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(text.upper())


app = Starlette(routes=[
    Route("/", home),
    Route("/users/{name}", user),
    Route("/ticks", ticks),
    WebSocketRoute("/shout", shout),
])
