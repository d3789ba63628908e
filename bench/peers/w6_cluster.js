// W6 with 2 workers (Node): w6_hello.js under `cluster`.  node w6_cluster.js PORT [N]
// The primary forks N workers (default 2) and prints "ready" once they all
// listen.  Node's default on Linux is round-robin: the primary accepts and
// hands each connection to a worker over IPC.
const cluster = require("cluster");
const http = require("http");
const port = Number(process.argv[2]);
const n = Number(process.argv[3] || 2);
if (cluster.isPrimary) {
  let listening = 0;
  for (let i = 0; i < n; i++) cluster.fork();
  cluster.on("listening", () => { if (++listening === n) console.log("ready"); });
  process.on("SIGTERM", () => {
    for (const id in cluster.workers) cluster.workers[id].kill();
    process.exit(0);
  });
} else {
  http.createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end("Hello, World!");
  }).listen(port, "127.0.0.1");
}
