// W2 for Node: two async functions bounce an integer through two
// one-slot queues (promise-based, the usual hand-written kind).
const n = Number(process.argv[2] || 1000000);
class Queue1 {
  constructor() { this.items = []; this.getters = []; this.putters = []; }
  async put(x) {
    while (this.items.length >= 1) await new Promise((r) => this.putters.push(r));
    this.items.push(x);
    const g = this.getters.shift(); if (g) g();
  }
  async get() {
    while (this.items.length === 0) await new Promise((r) => this.getters.push(r));
    const x = this.items.shift();
    const p = this.putters.shift(); if (p) p();
    return x;
  }
}
async function main() {
  const a = new Queue1(), q = new Queue1();
  const t0 = process.hrtime.bigint();
  const ping = (async () => { let x = 0; for (let i = 0; i < n; i++) { await a.put(x); x = await q.get(); } return x; })();
  const pong = (async () => { for (let i = 0; i < n; i++) { const x = await a.get(); await q.put(x + 1); } return 0; })();
  const [v] = await Promise.all([ping, pong]);
  const dt = Number(process.hrtime.bigint() - t0) / 1e9;
  if (v !== n) throw new Error("bad result");
  console.log(`RESULT ${Math.round(2 * n / dt)}`);
}
main();
