#!/usr/bin/python3
"""w6_spread.py: how evenly do worker processes share a port?

  w6_spread.py MODE WORKERS CONNECTIONS CONCURRENCY [WORK_US]

MODE shared: the parent listens and forks the workers, which all accept
on that one socket (one accept queue, every worker's epoll woken);
MODE reuseport: each worker binds its own SO_REUSEPORT socket (a queue
each, the kernel picks one by a hash of the connection's addresses).
Each worker is an epoll loop (level-triggered, as libuv's) answering
"worker-index" on each connection and closing it, after WORK_US
microseconds of busy work (the cost of a request).  The clients open
CONNECTIONS connections, CONCURRENCY at a time, and count the answers
per worker.  Prints "MODE: counts... max/min ratio".
"""
import os, socket, selectors, sys, time, threading, signal

def serve(idx, lsock, work_us):
    sel = selectors.EpollSelector()
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ)
    msg = b"%d" % idx
    while True:
        for _key, _ in sel.select():
            while True:
                try:
                    c, _ = lsock.accept()
                except BlockingIOError:
                    break
                t = time.perf_counter() + work_us / 1e6
                while time.perf_counter() < t:
                    pass
                try:
                    c.sendall(msg)
                except OSError:
                    pass
                c.close()

def listener(port, reuse):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(511)
    return s

def main():
    mode, n, total, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    work_us = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    probe = socket.socket(); probe.bind(("127.0.0.1", 0)); port = probe.getsockname()[1]; probe.close()
    shared = listener(port, False) if mode == "shared" else None
    pids = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            serve(i, shared if shared else listener(port, True), work_us)
            os._exit(0)
        pids.append(pid)
    time.sleep(0.3)
    counts = [0] * n
    lock = threading.Lock()
    left = [total]
    def client():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            c = socket.create_connection(("127.0.0.1", port))
            data = c.recv(16)
            c.close()
            with lock:
                counts[int(data)] += 1
    ts = [threading.Thread(target=client) for _ in range(conc)]
    for t in ts: t.start()
    for t in ts: t.join()
    for p in pids:
        os.kill(p, signal.SIGKILL)
        os.waitpid(p, 0)
    print("%s: %s max/min %.2f" % (mode, " ".join(map(str, counts)),
          max(counts) / max(1, min(counts))))

main()
