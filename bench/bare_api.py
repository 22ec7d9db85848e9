"""The HTTP ceiling: uvicorn with one FastAPI endpoint that does nothing (201, a small JSON
body), started the way ``serve`` starts its API (one process, the same uvicorn options)."""

import asyncio
import sys

import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()


@app.post("/v1/leads", status_code=201)
async def nothing(request: Request) -> dict:
    await request.body()
    return {"id": 1, "status": "active"}


async def main(port: int) -> None:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None,
                            log_level="warning", access_log=False, timeout_keep_alive=5)
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    print(server.servers[0].sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
