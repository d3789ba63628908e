# W3mem for asyncio: RSS growth per task sleeping 10 s.
import asyncio, sys, gc
n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
async def main():
    gc.collect()
    before = rss_kb()
    started = 0
    async def job():
        nonlocal started
        started += 1
        await asyncio.sleep(10)
    tasks = [asyncio.create_task(job()) for _ in range(n)]
    while started < n:
        await asyncio.sleep(0.01)
    gc.collect()
    print("RESULT %.0f" % ((rss_kb() - before) * 1024 / n), flush=True)
    import os; os._exit(0)
asyncio.run(main())
