-- spec/queues_spec.lua: Queue, LifoQueue, PriorityQueue (asyncio 3.13
-- queues.py): order, bounds, nowait errors, join/task_done, shutdown, and
-- cancellation races (a cancelled get/put loses no item and no slot).
local aio = require "luaio"
local H = require "helper"

local V = { clock = "virtual" }

local run = H.guarded

local function is_cancelled(err) return aio.is(err, aio.CancelledError) end
local function is_shutdown(err) return aio.is(err, aio.QueueShutDown) end

local spin = H.spin

local function spawn(f, ...) return aio.create_task(f, ...) end

local settle = H.settle

local function drain(q)
  local out = {}
  while not q:empty() do out[#out + 1] = q:get_nowait() end
  return out
end

local in_callback = H.in_callback

local function needs_task(name, f, ...)
  local res = in_callback(f, ...)
  assert.is_false(res[1])
  assert.matches(name, tostring(res[2]), 1, true)
  assert.matches("needs a running task", tostring(res[2]), 1, true)
end

-- a deterministic pseudo-random sequence
local function lcg(seed)
  return function(n)
    seed = (seed * 1103515245 + 12345) % 2147483648
    return (seed // 65536) % n + 1
  end
end

------------------------------------------------------------------ basics
describe("Queue basics", function()
  it("FIFO order, qsize, empty, full, maxsize", function()
    local q = aio.Queue(3)
    assert.equal(3, q.maxsize)
    assert.is_true(q:empty())
    assert.is_false(q:full())
    assert.equal(0, q:qsize())
    q:put_nowait("a")
    q:put_nowait(false)           -- false is a value like any other
    assert.equal(2, q:qsize())
    assert.is_false(q:empty())
    assert.is_false(q:full())
    q:put_nowait({ k = 1 })
    assert.is_true(q:full())
    assert.equal("a", q:get_nowait())
    assert.equal(false, q:get_nowait())
    assert.same({ k = 1 }, q:get_nowait())
    assert.is_true(q:empty())
  end)

  it("nowait errors are QueueFull and QueueEmpty, and change nothing", function()
    local q = aio.Queue(1)
    local ok, err = pcall(q.get_nowait, q)
    assert.is_false(ok)
    assert.is_true(aio.is(err, aio.QueueEmpty))
    assert.is_true(aio.is(err, aio.Error))
    q:put_nowait(1)
    ok, err = pcall(q.put_nowait, q, 2)
    assert.is_false(ok)
    assert.is_true(aio.is(err, aio.QueueFull))
    assert.is_false(aio.is(err, aio.QueueEmpty))
    assert.equal(1, q:qsize())
    assert.equal(1, q:get_nowait())
    assert.is_true(q:empty())
  end)

  it("maxsize nil, 0 or negative means unbounded", function()
    assert.equal(0, aio.Queue().maxsize)
    for _, q in ipairs { aio.Queue(), aio.Queue(0), aio.Queue(-3), aio.LifoQueue(),
                         aio.PriorityQueue(), aio.PriorityQueue(-1) } do
      for i = 1, 1000 do q:put_nowait(i) end
      assert.is_false(q:full())
      assert.equal(1000, q:qsize())
    end
  end)

  it("rejects bad arguments with clear errors", function()
    for name, f in pairs { Queue = aio.Queue, LifoQueue = aio.LifoQueue,
                           PriorityQueue = aio.PriorityQueue } do
      local bad = "bad argument #1 to '" .. name .. "' (integer expected, got "
      assert.matches(bad .. "string)", H.errof(f, "big"), 1, true)
      assert.matches(bad .. "float)", H.errof(f, 1.5), 1, true)
    end
    local ok, err = pcall(aio.PriorityQueue, 0, 42)
    assert.is_false(ok)
    assert.matches("PriorityQueue", tostring(err), 1, true)
  end)

  it("methods check self: a table holding something else at [1] is refused", function()
    local q = aio.Queue(1)
    local mt = getmetatable(q)
    local wl = require("luaio.core").WaitList()   -- a userdata of another kind
    local selves = {
      42, "q", {}, { 1 }, { io.stdout }, { wl }, { aio.Future() },
      setmetatable({ io.stdout, maxsize = 1 }, mt),
      setmetatable({ wl, maxsize = 1 }, mt),
    }
    run(function()
      selves[#selves + 1] = { aio.current_task() }
      for _, name in ipairs { "put_nowait", "get_nowait", "qsize", "empty", "full",
                              "task_done", "shutdown", "put", "get", "join" } do
        for _, self in ipairs(selves) do
          local ok, err = pcall(q[name], self, 1)
          assert.is_false(ok, name)
          assert.matches(("calling 'Queue:%s' on bad self (Queue expected, got "):format(name),
            tostring(err), 1, true)
        end
      end
      -- the queue's own userdata in another table of the class is that queue
      local alias = setmetatable({ q[1], maxsize = 1 }, mt)
      alias:put_nowait("x")
      assert.equal(1, q:qsize())
      assert.equal("x", q:get_nowait())
    end)
    assert.is_false(q:is_shutdown())
  end)

  it("nil cannot be queued (clear error, nothing stored)", function()
    local q = aio.Queue()
    local ok, err = pcall(q.put_nowait, q, nil)
    assert.is_false(ok)
    assert.matches("nil", tostring(err), 1, true)
    assert.matches("put_nowait: nil cannot be queued", H.errof(q.put_nowait, q), 1, true)
    run(function()
      local ok2, err2 = pcall(q.put, q, nil)
      assert.is_false(ok2)
      assert.matches("nil", tostring(err2), 1, true)
      assert.matches("put: nil cannot be queued", H.errof(q.put, q), 1, true)
    end)
    assert.equal(0, q:qsize())
    -- not counted as unfinished either
    assert.matches("task_done: called more times than items were put",
      H.errof(q.task_done, q), 1, true)
    for _, p in ipairs { aio.LifoQueue(), aio.PriorityQueue() } do
      assert.matches("put_nowait: nil cannot be queued", H.errof(p.put_nowait, p, nil), 1, true)
      assert.equal(0, p:qsize())
    end
  end)

  it("suspending calls outside a task need a running task", function()
    run(function()
      local q = aio.Queue(1)
      needs_task("get", q.get, q)
      q:put_nowait(1)
      needs_task("get", q.get, q)      -- even when it would not suspend
      needs_task("put", q.put, q, 2)
      assert.equal(1, q:qsize())
      q:get_nowait()
      needs_task("put", q.put, q, 2)   -- even with room
      assert.equal(0, q:qsize())
      needs_task("join", q.join, q)    -- one unfinished item
      q:task_done()
      needs_task("join", q.join, q)    -- none
    end)
  end)

  it("keeps FIFO order across ring growth and wrap-around", function()
    local q = aio.Queue()
    local want, got = {}, {}
    local n = 0
    local function put(k)
      for _ = 1, k do n = n + 1; q:put_nowait(n); want[#want + 1] = n end
    end
    local function get(k)
      for _ = 1, k do got[#got + 1] = q:get_nowait() end
    end
    put(5); get(3); put(20); get(10); put(7); get(2); put(40); get(q:qsize())
    put(8); get(8); put(9); get(4); put(30); get(q:qsize())
    assert.same(want, got)
    assert.is_true(q:empty())
  end)

  it("keeps FIFO order in bounded queues of every ring size across wrap-around", function()
    for _, size in ipairs { 1, 2, 5, 16, 17, 40 } do
      local q = aio.Queue(size)
      local n, want, got = 0, {}, {}
      for round = 1, 50 do
        for _ = 1, math.min((round * 7) % size + 1, size - q:qsize()) do
          n = n + 1; q:put_nowait(n); want[#want + 1] = n
        end
        assert.is_true(q:qsize() >= 1 and q:qsize() <= size)
        for _ = 1, (round * 3) % q:qsize() + 1 do got[#got + 1] = q:get_nowait() end
      end
      while not q:empty() do got[#got + 1] = q:get_nowait() end
      assert.same(want, got)
      local err = H.errof(q.get_nowait, q)
      assert.is_true(aio.is(err, aio.QueueEmpty), tostring(err))
    end
  end)

  it("holds no reference to an item once it was taken (it can be collected)", function()
    for _, size in ipairs { 1, 4, 100, 0 } do
      local q = aio.Queue(size)
      local weak = setmetatable({}, { __mode = "k" })
      do
        local item = {}
        weak[item] = true
        q:put_nowait(item)
        assert.equal(item, q:get_nowait())
      end
      collectgarbage(); collectgarbage()
      assert.is_nil(next(weak), "Queue(" .. size .. ") kept a taken item")
    end
  end)

  it("LifoQueue is last in, first out", function()
    local q = aio.LifoQueue(4)
    for i = 1, 4 do q:put_nowait(i) end
    assert.is_true(q:full())
    local err = H.errof(q.put_nowait, q, 5)
    assert.is_true(aio.is(err, aio.QueueFull), tostring(err))
    assert.equal(4, q:get_nowait())
    q:put_nowait("x")
    assert.same({ "x", 3, 2, 1 }, drain(q))
  end)
end)

------------------------------------------------------------------ priority
describe("PriorityQueue", function()
  it("orders numbers and strings with <", function()
    local q = aio.PriorityQueue()
    for _, x in ipairs { 5, 1, 4, 2, 3, 1, -7, 2.5 } do q:put_nowait(x) end
    assert.same({ -7, 1, 1, 2, 2.5, 3, 4, 5 }, drain(q))
    local s = aio.PriorityQueue()
    for _, x in ipairs { "pear", "apple", "fig", "banana" } do s:put_nowait(x) end
    assert.same({ "apple", "banana", "fig", "pear" }, drain(s))
  end)

  it("orders tables with a less function", function()
    local q = aio.PriorityQueue(nil, function(a, b) return a.p < b.p end)
    for _, x in ipairs { { p = 3, n = "c" }, { p = 1, n = "a" }, { p = 4, n = "d" },
                         { p = 2, n = "b" } } do
      q:put_nowait(x)
    end
    local names = {}
    for _, x in ipairs(drain(q)) do names[#names + 1] = x.n end
    assert.same({ "a", "b", "c", "d" }, names)
    -- a reversed order makes a max-queue
    local m = aio.PriorityQueue(0, function(a, b) return a > b end)
    for _, x in ipairs { 2, 9, 4, 7 } do m:put_nowait(x) end
    assert.same({ 9, 7, 4, 2 }, drain(m))
  end)

  it("agrees with table.sort under interleaved puts and gets", function()
    local rnd = lcg(7)
    local q = aio.PriorityQueue()
    local model, got, want = {}, {}, {}
    for _ = 1, 400 do
      if #model > 0 and rnd(3) == 1 then
        table.sort(model)
        want[#want + 1] = table.remove(model, 1)
        got[#got + 1] = q:get_nowait()
      else
        local x = rnd(50)
        model[#model + 1] = x
        q:put_nowait(x)
      end
    end
    table.sort(model)
    for _, x in ipairs(model) do want[#want + 1] = x end
    for _, x in ipairs(drain(q)) do got[#got + 1] = x end
    assert.same(want, got)
  end)

  it("honours maxsize and wakes a waiting getter with the smallest item", function()
    run(function()
      local q = aio.PriorityQueue(2)
      local g = spawn(function() return q:get() end)
      spin()
      q:put_nowait(5)
      q:put_nowait(3)
      assert.is_true(q:full())
      local err = H.errof(q.put_nowait, q, 1)
      assert.is_true(aio.is(err, aio.QueueFull), tostring(err))
      -- the getter runs after both puts: it sees the smallest
      assert.equal(3, g:await())
      assert.same({ 5 }, drain(q))
    end)
  end)
end)

describe("Queue loop binding", function()
  it("a queue waited on in one loop errors when waited on in another", function()
    local q = aio.Queue(1)
    run(function()
      local g = spawn(function() return q:get() end)
      spin()
      q:put_nowait(1)
      assert.equal(1, g:await())
    end)
    run(function()
      local ok, err = pcall(q.get, q)
      assert.is_false(ok)
      assert.matches("loop", tostring(err), 1, true)
      q:put_nowait(1)
      ok, err = pcall(q.put, q, 2)
      assert.is_false(ok)
      assert.matches("loop", tostring(err), 1, true)
      assert.equal(1, q:get_nowait())   -- nowait calls bind nothing
    end)
  end)
end)

------------------------------------------------------------------ waiting
describe("Queue waiting", function()
  it("get waits for a put; put waits for room", function()
    run(function()
      local q = aio.Queue(1)
      local g = spawn(function() return q:get() end)
      spin()
      assert.is_false(g:done())
      q:put("a")
      assert.equal("a", g:await())
      q:put("b")
      local p = spawn(function() q:put("c"); return "put" end)
      spin()
      assert.is_false(p:done())
      assert.equal("b", q:get())
      assert.equal("put", p:await())
      assert.equal("c", q:get())
    end)
  end)

  it("getters are served FIFO", function()
    run(function()
      local q = aio.Queue()
      local got = {}
      local ts = {}
      for i = 1, 4 do
        ts[i] = spawn(function() got[i] = q:get() end)
      end
      spin()
      for i = 1, 4 do q:put_nowait("item" .. i) end
      settle(ts)
      assert.same({ "item1", "item2", "item3", "item4" }, got)
    end)
  end)

  it("putters are served FIFO and their items keep that order", function()
    run(function()
      local q = aio.Queue(1)
      q:put_nowait(0)
      local ts = {}
      for i = 1, 4 do
        ts[i] = spawn(function() q:put(i) end)
      end
      spin()
      local got = {}
      for _ = 1, 5 do got[#got + 1] = q:get() end
      settle(ts)
      assert.same({ 0, 1, 2, 3, 4 }, got)
    end)
  end)

  it("put_nowait may take a freed slot; the woken putter then waits again", function()
    run(function()
      local q = aio.Queue(1)
      q:put_nowait("first")
      local p = spawn(function() q:put("waiter") end)
      spin()
      assert.equal("first", q:get_nowait())   -- wakes the putter
      -- asyncio: the slot is free now; put_nowait may take it, and the
      -- woken putter then waits again (no item lost, none duplicated)
      q:put_nowait("main")
      spin()
      assert.is_false(p:done())
      assert.equal("main", q:get_nowait())
      settle({ p })
      assert.same({ "waiter" }, drain(q))
    end)
  end)

  it("a woken getter does not own the item until it runs (no hand-off)", function()
    run(function()
      -- asyncio: put stores the item and wakes the first getter, which
      -- takes the queue's first item when it runs; until then the item is
      -- the queue's: counted, full, and get_nowait may take it
      local q = aio.Queue(1)
      local g = spawn(function() return q:get() end)
      spin()
      q:put_nowait("x")                       -- wakes g
      assert.equal(1, q:qsize())
      assert.is_true(q:full())
      local err = H.errof(q.put_nowait, q, "y")
      assert.is_true(aio.is(err, aio.QueueFull), tostring(err))
      assert.equal("x", q:get_nowait())       -- taken before g runs
      q:put_nowait("z")
      assert.equal("z", g:await())
      -- LIFO and priority order apply to what is there when the getter runs
      local l = aio.LifoQueue()
      local lg = spawn(function() return l:get() end)
      spin()
      l:put_nowait(2)                         -- wakes lg ...
      l:put_nowait(3)                         -- ... which runs after this
      assert.equal(3, lg:await())
      assert.same({ 2 }, drain(l))
      local pq = aio.PriorityQueue()
      local pg = spawn(function() return pq:get() end)
      spin()
      pq:put_nowait(2)                        -- wakes pg ...
      pq:put_nowait(1)
      assert.equal(1, pg:await())
      assert.same({ 2 }, drain(pq))
    end)
  end)

  it("works with LifoQueue and PriorityQueue", function()
    run(function()
      local l = aio.LifoQueue(2)
      local p = aio.PriorityQueue(2)
      local gl = spawn(function() return l:get() end)
      local gp = spawn(function() return p:get() end)
      spin()
      l:put(1); p:put(9)
      assert.equal(1, gl:await())
      assert.equal(9, gp:await())
      l:put(1); l:put(2)
      local pl = spawn(function() l:put(3) end)
      spin()
      assert.equal(2, l:get())
      settle({ pl })
      assert.same({ 3, 1 }, drain(l))
    end)
  end)
end)

------------------------------------------------------------------ cancellation
describe("Queue cancellation", function()
  it("a getter cancelled while it waits leaves; the next getter gets the item", function()
    run(function()
      local q = aio.Queue()
      local g1 = spawn(function() return q:get() end)
      local g2 = spawn(function() return q:get() end)
      spin()
      g1:cancel()
      spin()
      assert.is_true(g1:cancelled())
      q:put_nowait("x")
      assert.equal("x", g2:await())
      assert.is_true(q:empty())
    end)
  end)

  it("a getter cancelled after a put woke it leaves the item for the next getter", function()
    run(function()
      local q = aio.Queue()
      local g1 = spawn(function() return q:get() end)
      local g2 = spawn(function() return q:get() end)
      spin()
      q:put_nowait("x")    -- wakes g1 ...
      g1:cancel()          -- ... cancelled before it runs
      settle({ g1, g2 })
      assert.is_true(g1:cancelled())
      assert.equal("x", g2:result())
      assert.is_true(q:empty())
    end)
  end)

  it("a woken-then-cancelled sole getter leaves the item in the queue", function()
    run(function()
      local q = aio.Queue()
      local g1 = spawn(function() return q:get() end)
      spin()
      q:put_nowait("x")
      g1:cancel()
      settle({ g1 })
      assert.is_true(g1:cancelled())
      assert.equal(1, q:qsize())
      -- and a later getter gets it without waiting
      assert.equal("x", spawn(function() return q:get() end):await())
    end)
  end)

  it("two puts, first getter cancelled after wake-up: one item served, one kept", function()
    run(function()
      local q = aio.Queue()
      local g1 = spawn(function() return q:get() end)
      local g2 = spawn(function() return q:get() end)
      local g3 = spawn(function() return q:get() end)
      spin()
      q:put_nowait("x")
      q:put_nowait("y")
      g1:cancel()
      spin(10)
      assert.is_true(g1:cancelled())
      -- g2 and g3 each got one item: the wake-up g1 held was passed on
      assert.is_true(g2:done() and g3:done())
      assert.same({ "x", "y" }, { g2:result(), g3:result() })
      assert.is_true(q:empty())
    end)
  end)

  it("a putter cancelled while it waits leaves and stores nothing", function()
    run(function()
      local q = aio.Queue(1)
      q:put_nowait("a")
      local p1 = spawn(function() q:put("b") end)
      local p2 = spawn(function() q:put("c") end)
      spin()
      p1:cancel()
      spin()
      assert.is_true(p1:cancelled())
      assert.equal("a", q:get_nowait())
      settle({ p2 })
      assert.same({ "c" }, drain(q))
    end)
  end)

  it("a putter cancelled after a get woke it passes the slot to the next putter", function()
    run(function()
      local q = aio.Queue(1)
      q:put_nowait("a")
      local p1 = spawn(function() q:put("b") end)
      local p2 = spawn(function() q:put("c") end)
      spin()
      assert.equal("a", q:get_nowait())   -- wakes p1 ...
      p1:cancel()                         -- ... cancelled before it runs
      spin(10)
      assert.is_true(p1:cancelled())
      assert.is_true(p2:done())
      assert.is_nil(p2:exception())
      assert.same({ "c" }, drain(q))
    end)
  end)

  it("a pending cancellation is raised at a blocked get or put", function()
    run(function()
      local q = aio.Queue(1)
      local g = spawn(function() aio.current_task():cancel(); return q:get() end)
      settle({ g })
      assert.is_true(g:cancelled())
      q:put_nowait("a")
      local p = spawn(function() aio.current_task():cancel(); q:put("b") end)
      settle({ p })
      assert.is_true(p:cancelled())
      assert.same({ "a" }, drain(q))
      -- nothing stale is left on the wait lists
      local g2 = spawn(function() return q:get() end)
      spin()
      q:put_nowait("c")
      assert.equal("c", g2:await())
    end)
  end)

  it("get under wait_for times out; the item put later is not lost", function()
    run(function()
      local q = aio.Queue()
      local ok, err = pcall(aio.wait_for, function() return q:get() end, 1)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError))
      q:put_nowait("x")
      assert.equal(1, q:qsize())
      -- a later put goes to a live getter, not to the timed-out one
      local g = spawn(function() return q:get() end)
      local g2 = spawn(function() return q:get() end)
      spin()
      assert.equal("x", g:await())
      q:put_nowait("y")
      assert.equal("y", g2:await())
      assert.is_true(q:empty())
    end, V)
  end)

  for _, order in ipairs { "timeout first", "put first" } do
    it("get under wait_for racing a put at the deadline loses nothing (" .. order .. ")", function()
      run(function()
        local q = aio.Queue()
        local w, p
        local function waiter()
          return aio.wait_for(function() return q:get() end, 1)
        end
        local function putter()
          aio.sleep(1)
          q:put_nowait("x")
        end
        if order == "timeout first" then
          w = spawn(waiter); p = spawn(putter)
        else
          p = spawn(putter); w = spawn(waiter)
        end
        settle({ w, p })
        local err = w:exception()
        if err == nil then
          assert.equal("x", w:result())
          assert.is_true(q:empty())
        else
          assert.is_true(aio.is(err, aio.TimeoutError))
          assert.same({ "x" }, drain(q))
        end
      end, V)
    end)
  end

  it("put under wait_for times out on a full queue; the slot is not lost", function()
    run(function()
      local q = aio.Queue(1)
      q:put_nowait("a")
      local ok, err = pcall(aio.wait_for, function() q:put("b") end, 1)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError))
      local p = spawn(function() q:put("c") end)
      spin()
      assert.equal("a", q:get_nowait())
      settle({ p })
      assert.same({ "c" }, drain(q))
    end, V)
  end)

  it("random cancellations of getters and putters lose and duplicate no item", function()
    run(function()
      local rnd = lcg(42)
      local q = aio.Queue(3)
      local seq = 0
      local stored, seen = {}, {}      -- put returned / item came out
      local outs = 0
      local function out(x)
        assert(stored[x], "item " .. tostring(x) .. " came out but its put failed")
        assert(not seen[x], "item " .. tostring(x) .. " came out twice")
        seen[x] = true
        outs = outs + 1
      end
      local function producer()
        while true do
          seq = seq + 1
          local x = seq
          stored[x] = "pending"
          local ok, err = pcall(q.put, q, x)
          if not ok then stored[x] = nil; error(err, 0) end
          stored[x] = true
        end
      end
      local function consumer()
        while true do out(q:get()) end
      end
      local prod, cons = {}, {}
      for i = 1, 3 do prod[i] = spawn(producer); cons[i] = spawn(consumer) end
      for _ = 1, 300 do
        local r = rnd(6)
        if r == 1 and not q:empty() then
          out(q:get_nowait())          -- wakes a putter
        elseif r == 2 and not q:full() then
          seq = seq + 1
          stored[seq] = true
          q:put_nowait(seq)            -- wakes a getter
        end
        -- cancel someone, often one that was just woken
        local list = rnd(2) == 1 and prod or cons
        local i = rnd(#list)
        if rnd(2) == 1 then
          list[i]:cancel()
          list[i] = spawn(list == prod and producer or consumer)
        end
        if rnd(3) == 1 then aio.sleep(0) end
      end
      -- no lost wake-up for getters: with producers gone, consumers drain
      for i = 1, 3 do prod[i]:cancel() end
      settle(prod)
      spin(10)
      assert.is_true(q:empty())
      -- no lost wake-up for putters: with consumers gone, producers fill
      for i = 1, 3 do cons[i]:cancel() end
      settle(cons)
      for i = 1, 3 do prod[i] = spawn(producer) end
      spin(10)
      assert.is_true(q:full())
      out(q:get_nowait()); out(q:get_nowait())
      spin(10)
      assert.is_true(q:full())
      for i = 1, 3 do prod[i]:cancel() end
      settle(prod)
      for _, x in ipairs(drain(q)) do out(x) end
      -- every stored item came out exactly once
      local n = 0
      for x, v in pairs(stored) do
        assert(v == true, "put of " .. x .. " neither finished nor failed")
        assert(seen[x], "item " .. x .. " was lost")
        n = n + 1
      end
      assert.equal(n, outs)
      assert.is_true(n > 100)
    end)
  end)
end)

------------------------------------------------------------------ join
describe("Queue join/task_done", function()
  it("join returns at once with nothing unfinished", function()
    run(function()
      local q = aio.Queue()
      q:join()
      q:put_nowait(1)
      q:get_nowait()
      q:task_done()
      q:join()
    end)
  end)

  it("join waits for task_done of every item, not just for gets", function()
    run(function()
      local q = aio.Queue()
      for i = 1, 3 do q:put_nowait(i) end
      local joined = {}
      local js = {}
      for i = 1, 2 do js[i] = spawn(function() q:join(); joined[#joined + 1] = i end) end
      spin()
      drain(q)
      spin()
      assert.same({}, joined)
      q:task_done(); q:task_done()
      spin()
      assert.same({}, joined)
      q:task_done()
      settle(js)
      assert.same({ 1, 2 }, joined)
      -- a new put makes join wait again
      q:put_nowait(4)
      local j = spawn(function() q:join() end)
      spin()
      assert.is_false(j:done())
      q:get_nowait(); q:task_done()
      settle({ j })
      assert.is_nil(j:exception())
    end)
  end)

  it("workers with join: every item processed", function()
    run(function()
      local q = aio.Queue(2)
      local done = {}
      local workers = {}
      for w = 1, 3 do
        workers[w] = spawn(function()
          while true do
            local x = q:get()
            aio.sleep(0)
            done[#done + 1] = x
            q:task_done()
          end
        end)
      end
      for i = 1, 20 do q:put(i) end
      q:join()
      assert.equal(20, #done)
      for _, w in ipairs(workers) do w:cancel() end
      settle(workers)
    end)
  end)

  it("task_done called too many times is a clear error", function()
    local q = aio.Queue()
    local ok, err = pcall(q.task_done, q)
    assert.is_false(ok)
    assert.matches("task_done", tostring(err), 1, true)
    q:put_nowait(1)
    q:get_nowait()
    q:task_done()
    assert.matches("task_done: called more times than items were put",
      H.errof(q.task_done, q), 1, true)
  end)

  it("a joiner cancelled while it waits leaves; other joiners still return", function()
    run(function()
      local q = aio.Queue()
      q:put_nowait(1)
      local j1 = spawn(function() q:join() end)
      local j2 = spawn(function() q:join() end)
      spin()
      j1:cancel()
      spin()
      assert.is_true(j1:cancelled())
      assert.is_false(j2:done())
      q:get_nowait()
      q:task_done()
      settle({ j2 })
      assert.is_nil(j2:exception())
      q:join()
    end)
  end)

  it("a joiner cancelled after task_done woke it is cancelled; others return", function()
    run(function()
      local q = aio.Queue()
      q:put_nowait(1)
      local j1 = spawn(function() q:join() end)
      local j2 = spawn(function() q:join() end)
      spin()
      q:get_nowait()
      q:task_done()
      j1:cancel()
      settle({ j1, j2 })
      assert.is_true(j1:cancelled())
      assert.is_nil(j2:exception())
      assert.is_false(j2:cancelled())
    end)
  end)

  it("join under wait_for times out and leaves the queue usable", function()
    run(function()
      local q = aio.Queue()
      q:put_nowait(1)
      local ok, err = pcall(aio.wait_for, function() q:join() end, 1)
      assert.is_false(ok)
      assert.is_true(aio.is(err, aio.TimeoutError))
      local j = spawn(function() q:join(); return "joined" end)
      spin()
      q:get_nowait(); q:task_done()
      assert.equal("joined", j:await())
    end, V)
  end)
end)

------------------------------------------------------------------ shutdown
describe("Queue shutdown", function()
  it("shutdown(): puts fail at once, gets drain the items then fail", function()
    run(function()
      local q = aio.Queue()
      q:put_nowait(1)
      q:put_nowait(2)
      q:shutdown()
      local ok, err = pcall(q.put_nowait, q, 3)
      assert.is_false(ok)
      assert.is_true(is_shutdown(err))
      assert.is_true(aio.is(err, aio.Error))
      ok, err = pcall(q.put, q, 3)
      assert.is_false(ok)
      assert.is_true(is_shutdown(err))
      assert.equal(2, q:qsize())
      assert.equal(1, q:get())
      assert.equal(2, q:get_nowait())
      ok, err = pcall(q.get, q)
      assert.is_false(ok)
      assert.is_true(is_shutdown(err))
      ok, err = pcall(q.get_nowait, q)
      assert.is_false(ok)
      assert.is_true(is_shutdown(err))
      assert.is_false(aio.is(err, aio.QueueEmpty))
      -- the items drained still count for join
      local j = spawn(function() q:join() end)
      spin()
      assert.is_false(j:done())
      q:task_done(); q:task_done()
      settle({ j })
      assert.is_nil(j:exception())
    end)
  end)

  it("shutdown() wakes waiting getters with QueueShutDown", function()
    run(function()
      local q = aio.Queue()
      local gs = {}
      for i = 1, 3 do gs[i] = spawn(function() return q:get() end) end
      spin()
      q:shutdown()
      settle(gs)
      for i = 1, 3 do assert.is_true(is_shutdown(gs[i]:exception())) end
    end)
  end)

  it("shutdown() wakes waiting putters with QueueShutDown and keeps the items", function()
    run(function()
      local q = aio.Queue(2)
      q:put_nowait("a"); q:put_nowait("b")
      local ps = {}
      for i = 1, 3 do ps[i] = spawn(function() q:put(i) end) end
      spin()
      q:shutdown()
      settle(ps)
      for i = 1, 3 do assert.is_true(is_shutdown(ps[i]:exception())) end
      -- shut down wins over full
      assert.is_true(is_shutdown(select(2, pcall(q.put_nowait, q, "z"))))
      assert.equal("a", q:get())
      assert.equal("b", q:get())
      assert.is_true(is_shutdown(select(2, pcall(q.get, q))))
    end)
  end)

  it("shutdown(true) drops the items, fails getters and putters, releases join", function()
    run(function()
      local q = aio.Queue(2)
      q:put_nowait("a"); q:put_nowait("b")
      local p = spawn(function() q:put("c") end)
      local j = spawn(function() q:join(); return "joined" end)
      spin()
      q:shutdown(true)
      assert.equal(0, q:qsize())
      assert.is_true(q:empty())
      settle({ p, j })
      assert.is_true(is_shutdown(p:exception()))
      assert.equal("joined", j:result())
      local ok, err = pcall(q.get_nowait, q)
      assert.is_false(ok)
      assert.is_true(is_shutdown(err))
      ok, err = pcall(q.get, q)
      assert.is_false(ok)
      assert.is_true(is_shutdown(err))
      ok, err = pcall(q.put_nowait, q, "d")
      assert.is_false(ok)
      assert.is_true(is_shutdown(err))
      -- the dropped items were marked done: a task_done now is one too many
      assert.matches("task_done: called more times than items were put",
        H.errof(q.task_done, q), 1, true)
      q:join()
    end)
  end)

  it("shutdown(true) wakes waiting getters with QueueShutDown", function()
    run(function()
      local q = aio.Queue()
      local gs = {}
      for i = 1, 2 do gs[i] = spawn(function() return q:get() end) end
      spin()
      q:shutdown(true)
      settle(gs)
      for i = 1, 2 do assert.is_true(is_shutdown(gs[i]:exception())) end
    end)
  end)

  it("shutdown(true) keeps join waiting for items already taken", function()
    run(function()
      local q = aio.Queue()
      for i = 1, 3 do q:put_nowait(i) end
      assert.equal(1, q:get_nowait())     -- taken, not yet done
      local j = spawn(function() q:join() end)
      spin()
      q:shutdown(true)
      spin()
      assert.is_false(j:done())
      q:task_done()
      settle({ j })
      assert.is_nil(j:exception())
    end)
  end)

  it("shutdown() then shutdown(true) drops what was left", function()
    run(function()
      local q = aio.LifoQueue()
      q:put_nowait(1); q:put_nowait(2)
      q:shutdown()
      q:shutdown()
      assert.equal(2, q:qsize())
      q:shutdown(true)
      assert.equal(0, q:qsize())
      q:join()
      local p = aio.PriorityQueue()
      p:put_nowait(2); p:put_nowait(1)
      p:shutdown()
      assert.equal(1, p:get_nowait())
      assert.equal(2, p:get_nowait())
      assert.is_true(is_shutdown(select(2, pcall(p.get_nowait, p))))
    end)
  end)

  it("a getter woken by a put and then by shutdown still gets the item", function()
    run(function()
      local q = aio.Queue()
      local g = spawn(function() return q:get() end)
      spin()
      q:put_nowait("x")
      q:shutdown()
      assert.equal("x", g:await())
      assert.is_true(is_shutdown(select(2, pcall(q.get, q))))
    end)
  end)

  it("a getter woken by a put loses the item to shutdown(true) and fails", function()
    run(function()
      local q = aio.Queue()
      local g = spawn(function() return q:get() end)
      spin()
      q:put_nowait("x")
      q:shutdown(true)
      settle({ g })
      assert.is_true(is_shutdown(g:exception()))
      assert.equal(0, q:qsize())
    end)
  end)

  it("a putter woken by a get and then by shutdown() fails and stores nothing", function()
    run(function()
      local q = aio.Queue(1)
      q:put_nowait("a")
      local p = spawn(function() q:put("b") end)
      spin()
      assert.equal("a", q:get_nowait())
      q:shutdown()
      settle({ p })
      assert.is_true(is_shutdown(p:exception()))
      assert.equal(0, q:qsize())
    end)
  end)

  it("a getter cancelled during shutdown is cancelled, not shut down", function()
    run(function()
      local q = aio.Queue()
      local g = spawn(function() return q:get() end)
      spin()
      q:shutdown()
      g:cancel()
      settle({ g })
      assert.is_true(g:cancelled())
      local ok, err = pcall(q.get, q)
      assert.is_false(ok)
      assert.is_true(is_shutdown(err))
      assert.is_false(is_cancelled(err))
    end)
  end)
end)
