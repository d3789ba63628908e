# An echo server on aiohttp (spec/websocket_peers_spec.lua): prints its
# port; echoes each message as it came; "close:CODE:REASON" closes.
import asyncio
from aiohttp import web, WSMsgType


async def handler(request):
    ws = web.WebSocketResponse(max_msg_size=0, protocols=["chat"])
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            if msg.data.startswith("close:"):
                _, code, reason = msg.data.split(":", 2)
                await ws.close(code=int(code), message=reason.encode())
            else:
                await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def main():
    app = web.Application()
    app.router.add_get("/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Future()

asyncio.run(main())
