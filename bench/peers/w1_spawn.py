# W1 for asyncio: spawn N tasks that each sleep(0) once and return i;
# awaited one by one, or by one asyncio.gather with "gather" (W1gather).
import asyncio, sys, time, resource
n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
gather = len(sys.argv) > 2 and sys.argv[2] == "gather"
async def main():
    async def job(i):
        await asyncio.sleep(0)
        return i
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(job(i)) for i in range(1, n + 1)]
    if gather:
        s = sum(await asyncio.gather(*tasks))
    else:
        s = 0
        for t in tasks:
            s += await t
    return s, time.perf_counter() - t0
s, dt = asyncio.run(main())
assert s == n * (n + 1) // 2
print("RESULT %.0f %d" % (n / dt, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
