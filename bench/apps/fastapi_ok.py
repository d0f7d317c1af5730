# The benchmark's FastAPI app: one route answering "ok".
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/", response_class=PlainTextResponse)
async def ok():
    return "ok"
