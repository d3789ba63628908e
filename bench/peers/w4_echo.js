// W4 server for Node.
const net = require("net");
net.createServer((s) => { s.setNoDelay(true); s.on("data", (d) => s.write(d)); s.on("error", () => {}); })
  .listen(Number(process.argv[2]), "127.0.0.1", () => console.log("ready"));
