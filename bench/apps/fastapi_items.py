# The benchmark's realistic FastAPI app: a path parameter and query
# parameters, a pydantic model in and another out as JSON, and a startup
# handler (ASGI lifespan) that sets up state the route reads. bench/post.lua sends its
# requests: POST /items/42?q=blue&qty=3 with an Item as JSON.
from typing import List, Optional

from fastapi import FastAPI
from pydantic import BaseModel


class Item(BaseModel):
    name: str
    price: float
    tags: List[str] = []


class Quote(BaseModel):
    item_id: int
    name: str
    qty: int
    total: float
    tags: List[str]
    q: Optional[str] = None


app = FastAPI()


@app.on_event("startup")  # FastAPI 0.92 (Debian 12) has no lifespan= yet
async def startup():
    app.state.tax = 1.2


@app.post("/items/{item_id}", response_model=Quote)
async def quote(item_id: int, item: Item, q: Optional[str] = None, qty: int = 1):
    total = round(item.price * qty * app.state.tax, 2)
    return Quote(item_id=item_id, name=item.name, qty=qty, total=total, tags=item.tags, q=q)


@app.get("/")
async def root():
    return {"ok": True}
