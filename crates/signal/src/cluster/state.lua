-- Ringlet's cluster state: rooms, peers, presence and held messages in
-- Redis. Every operation is one script, so each runs atomically and all
-- nodes see one order of decisions (the hub's single lock, cluster-wide).
--
-- Prepended to each operation's script. ARGV[1..5] are the same for all:
-- key prefix, held messages and bytes per away peer, grace (ms), held-list
-- expiry (ms). Operation arguments start at ARGV[6].
--
-- Keys (P = prefix):
--   P room:<room>        hash peer -> JSON {seq, name?, res, on, fl?, sid?, node?, epoch?, hn, hb}
--                        (fl: online but still being handed what was held;
--                        messages keep being held until the node flushes)
--   P held:<room>:<peer> list of "event\npayload", expiring (PEXPIRE)
--   P deadlines          zset "room\npeer\nepoch" -> grace deadline (ms, Redis clock)
--   P nodes              set of node ids; P node:<id> the node's heartbeat (PX)
--   P on:<node>          set "room\npeer\nsid" of the peers online on a node
--   P rooms              set of rooms; P held, P away: cluster-wide gauges
--   P seq                join order and absence epochs
--
-- Reply: {code, message, dropped, n, n triples (event, payload, "sid,sid"),
-- then the operation's own fields}. code is '' or an ErrorCode.

local P = ARGV[1]
local MAXN = tonumber(ARGV[2])
local MAXB = tonumber(ARGV[3])
local GRACE = tonumber(ARGV[4])
local HELD_TTL = tonumber(ARGV[5])

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function rkey(room) return P .. 'room:' .. room end
local function hkey(room, peer) return P .. 'held:' .. room .. ':' .. peer end
local function okey(node) return P .. 'on:' .. node end
local function join3(a, b, c) return a .. '\n' .. b .. '\n' .. tostring(c) end
local function split3(m)
  local i = string.find(m, '\n', 1, true)
  local j = string.find(m, '\n', i + 1, true)
  return string.sub(m, 1, i - 1), string.sub(m, i + 1, j - 1), string.sub(m, j + 1)
end

local function load(room, peer)
  local v = redis.call('HGET', rkey(room), peer)
  if v then return cjson.decode(v) end
  return nil
end
local function store(room, peer, rec) redis.call('HSET', rkey(room), peer, cjson.encode(rec)) end

local code, message, dropped = '', '', 0
local sends = {}
local function fail(c, m)
  if code == '' then code, message = c, m end
end
local function send(ev, payload, sids)
  if #sids > 0 then
    table.insert(sends, ev); table.insert(sends, payload); table.insert(sends, table.concat(sids, ','))
  end
end
local function finish(tail)
  local out = {code, message, dropped, #sends / 3}
  for _, v in ipairs(sends) do table.insert(out, v) end
  for _, v in ipairs(tail) do table.insert(out, v) end
  return out
end

-- To one peer: its socket id when online (the caller emits), else held.
local function deliver(room, peer, rec, ev, payload, sids)
  if rec.on and not rec.fl then table.insert(sids, rec.sid); return true end
  if rec.hn >= MAXN or rec.hb + #payload > MAXB then
    fail('held-full', 'peer `' .. peer .. '` is reconnecting and has too much waiting; message dropped')
    return false
  end
  redis.call('RPUSH', hkey(room, peer), ev .. '\n' .. payload)
  redis.call('PEXPIRE', hkey(room, peer), HELD_TTL)
  rec.hn = rec.hn + 1
  rec.hb = rec.hb + #payload
  store(room, peer, rec)
  redis.call('INCR', P .. 'held')
  return true
end

-- To everyone in the room but `except`. A presence event that cannot be
-- held is not an error for whoever caused it.
local function broadcast(room, except, ev, payload)
  local all = redis.call('HGETALL', rkey(room))
  local sids = {}
  local c, m = code, message
  for i = 1, #all, 2 do
    if all[i] ~= except then deliver(room, all[i], cjson.decode(all[i + 1]), ev, payload, sids) end
  end
  code, message = c, m
  send(ev, payload, sids)
end

local function remove(room, peer, rec, reason)
  redis.call('HDEL', rkey(room), peer)
  if rec.on then
    redis.call('SREM', okey(rec.node), join3(room, peer, rec.sid))
  else
    redis.call('ZREM', P .. 'deadlines', join3(room, peer, rec.epoch))
    redis.call('DECR', P .. 'away')
  end
  if rec.hn > 0 then
    redis.call('DEL', hkey(room, peer))
    redis.call('DECRBY', P .. 'held', rec.hn)
    dropped = dropped + rec.hn
  end
  if redis.call('EXISTS', rkey(room)) == 0 then
    redis.call('SREM', P .. 'rooms', room)
  else
    broadcast(room, peer, 'peer-left', cjson.encode({roomId = room, peerId = peer, reason = reason}))
  end
end

-- An online peer's transport is gone: away for the grace period, or gone
-- at once when it cannot come back as itself.
local function go_away(room, peer, rec)
  if GRACE == 0 or not rec.res then
    remove(room, peer, rec, 'timeout')
    return
  end
  redis.call('SREM', okey(rec.node), join3(room, peer, rec.sid))
  rec.on = false
  rec.fl = nil
  rec.sid = nil
  rec.node = nil
  rec.epoch = redis.call('INCR', P .. 'seq')
  -- What a flush had not handed over yet stays held (hn, hb and the list).
  store(room, peer, rec)
  redis.call('ZADD', P .. 'deadlines', now_ms() + GRACE, join3(room, peer, rec.epoch))
  redis.call('INCR', P .. 'away')
end
