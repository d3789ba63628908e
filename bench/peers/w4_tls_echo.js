// W4 over TLS for Node (tls.createServer, echo by pipe-free write).
const tls = require("tls");
const fs = require("fs");
const server = tls.createServer({
  cert: fs.readFileSync(process.env.W4_CERT),
  key: fs.readFileSync(process.env.W4_KEY),
}, (sock) => {
  sock.setNoDelay(true);
  sock.on("data", (d) => sock.write(d));
  sock.on("error", () => {});
});
server.listen(Number(process.argv[2]), "127.0.0.1", () => console.log("ready"));
