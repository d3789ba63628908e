# W2 for asyncio: two tasks bounce an integer through two Queue(1).
import asyncio, sys, time
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
async def main():
    a, q = asyncio.Queue(1), asyncio.Queue(1)
    async def ping():
        x = 0
        for _ in range(n):
            await a.put(x)
            x = await q.get()
        return x
    async def pong():
        for _ in range(n):
            x = await a.get()
            await q.put(x + 1)
        return 0
    t0 = time.perf_counter()
    r = await asyncio.gather(ping(), pong())
    return r[0], time.perf_counter() - t0
v, dt = asyncio.run(main())
assert v == n
print("RESULT %.0f" % (2 * n / dt))
