# W6 (aiohttp on uvloop): an HTTP "hello world" server.  python3 w6_hello.py PORT
import asyncio, sys
import uvloop
from aiohttp import web

async def hello(request):
    return web.Response(text="Hello, World!")

async def main(port):
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()

uvloop.install()
asyncio.run(main(int(sys.argv[1])))
