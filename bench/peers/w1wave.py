# W1wave for asyncio: N short-lived tasks in waves of 1,000.
import asyncio, sys, time
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
async def main():
    async def job(i):
        await asyncio.sleep(0)
        return i
    t0 = time.perf_counter()
    s = 0
    for base in range(0, n, 1000):
        tasks = [asyncio.create_task(job(base + j + 1)) for j in range(min(1000, n - base))]
        s += sum(await asyncio.gather(*tasks))
    return s, time.perf_counter() - t0
s, dt = asyncio.run(main())
assert s == n * (n + 1) // 2
print("RESULT %.0f" % (n / dt))
