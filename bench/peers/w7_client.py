# W7 (aiohttp client on uvloop): N GETs from C workers over a pool of C.
# python3 w7_client.py URL N C
import asyncio, sys, time
import aiohttp, uvloop

async def main(url, n, c):
    left = [n]
    got = [0]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as s:
        async def worker():
            while left[0] > 0:
                left[0] -= 1
                async with s.get(url) as r:
                    got[0] += len(await r.read())
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        dt = time.perf_counter() - t0
    assert got[0] == 13 * n, got[0]
    print("RESULT %d" % (n / dt), flush=True)

uvloop.install()
asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
