"""A FastAPI application (Debian's python3-fastapi): a path parameter, a
JSON body, a streamed response and a WebSocket endpoint.

    torsion web --asgi fastapi_hello:app --chdir examples/asgi
"""
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@app.get("/")
async def root():
    return {"message": "Hello from FastAPI"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str = None):
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: Item):
    return {"name": item.name, "double": item.price * 2}


@app.get("/stream")
async def stream(n: int = 3):
    async def lines():
        for i in range(n):
            yield "line %d\n" % i

    return StreamingResponse(lines(), media_type="text/plain")


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_json()
            await websocket.send_json({"got": data})
    except WebSocketDisconnect:
        pass
