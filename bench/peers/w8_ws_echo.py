# W8 (Python websockets on uvloop): a WebSocket echo server.
#   /usr/bin/python3 w8_ws_echo.py PORT
import asyncio
import sys
import uvloop
import websockets


async def echo(ws, path=None):
    async for msg in ws:
        await ws.send(msg)


async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), compression=None):
        print("ready", flush=True)
        await asyncio.Future()

uvloop.install()
asyncio.run(main())
