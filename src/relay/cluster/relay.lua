-- Duet's relay rules on Redis: every decision that involves two names runs here, atomically.
-- Each script is this library followed by one `return op_...()` line (see cluster/mod.rs).
-- The rules mirror relay/registry.rs, the embedded registry, which is the oracle in tests.
--
-- ARGV[1] key prefix, ARGV[2] the calling node, ARGV[3] ring timeout ms, ARGV[4] grace ms,
-- ARGV[5] presence cap; the rest per operation.
--
-- Keys (P = prefix):
--   P u:NAME     hash node conn secret early away   (away = grace deadline, 0 while connected)
--   P c:NAME     hash peer caller ring               (ring = deadline while ringing, else 0)
--   P ahead:NAME list of JSON the caller sent while it rang, for a classic callee
--   P held:NAME  list of JSON for NAME while away
--   P online     zset (score 0) of connected names: ordered by bytes like the embedded BTreeMap
--   P due        zset "r:CALLER" (ring) / "a:NAME" (grace) / "n:NODE" (lease) -> deadline ms
--   P n:NODE     set of the names connected on NODE
--   P epoch      changes when Redis lost its data (nodes then register their users again)
--   P pv         presence list version;  P settings  "ring grace cap" of the live nodes
--
-- Deliveries are ops, one string each, fields split by "\n" (names and JSON have none): those
-- for the calling node are returned, in order; the others are published on P n:NODE, in order.
--   s CONN JSON            send the stamped message as it is
--   h CONN TO FROM CODE    a hangup from FROM with CODE
--   a CONN TO CALLEE       no_answer notice to the caller
--   r CONN TO              replaced: notice and close
--   t CONN TO              name taken: notice and close
--   p CONN TO V NAME...    the presence list, version V
--   g CONN TO              the ICE servers (made by the node)
--   b NODE CONN V NAME...  (P presence channel) presence for everyone, except NODE's CONN
--   l CONN PEER CALLER PNODE PCONN   CONN's answered call: PEER (none if empty), connected at
--                          PNODE's PCONN (empty while away)
--   v CONN TO FROM JSON    (published by a node, not a script) FROM's message to TO, on CONN if
--                          TO's node agrees they are in a call; else back through Redis
local P, NODE = ARGV[1], ARGV[2]
local RING, GRACE, CAP = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local HELD_MAX = 64
local out = {}

local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function emit(node, op)
  if node == NODE then
    out[#out + 1] = op
  else
    redis.call('PUBLISH', P .. 'n:' .. node, op)
  end
end

local function user(name)
  local v = redis.call('HMGET', P .. 'u:' .. name, 'node', 'conn', 'secret', 'early', 'away')
  if not v[5] then return nil end
  local away = tonumber(v[5])
  return { name = name, node = v[1], conn = v[2], secret = v[3], early = v[4] == '1',
           away = away, connected = away == 0 }
end

local function link(name)
  local v = redis.call('HMGET', P .. 'c:' .. name, 'peer', 'caller', 'ring')
  if not v[1] then return nil end
  return { peer = v[1], caller = v[2] == '1', ring = tonumber(v[3]) }
end

-- Presence after a join (the joiner gets its own list, first) or a leave.
-- Lists carry a version (P pv) so a node can tell which of a joiner's list and a broadcast that
-- crossed it is newer.
local function announce(joiner)
  local n = redis.call('ZCARD', P .. 'online')
  local list = table.concat(redis.call('ZRANGE', P .. 'online', 0, CAP - 1), '\n')
  -- Started from the clock, so lists after Redis lost its data still count as newer.
  if redis.call('EXISTS', P .. 'pv') == 0 then redis.call('SET', P .. 'pv', string.format('%d', now() * 1000)) end
  local v = string.format('%d', redis.call('INCR', P .. 'pv'))
  if joiner then
    emit(joiner.node, 'p\n' .. joiner.conn .. '\n' .. joiner.name .. '\n' .. v .. '\n' .. list)
  end
  if n <= CAP then
    local skip = joiner and (joiner.node .. '\n' .. joiner.conn) or '\n'
    redis.call('PUBLISH', P .. 'presence', 'b\n' .. skip .. '\n' .. v .. '\n' .. list)
  end
end

local function make_link(caller, callee, ring)
  redis.call('HSET', P .. 'c:' .. caller, 'peer', callee, 'caller', '1', 'ring', ring)
  redis.call('HSET', P .. 'c:' .. callee, 'peer', caller, 'caller', '0', 'ring', ring)
  if ring > 0 then redis.call('ZADD', P .. 'due', ring, 'r:' .. caller) end
end

-- What U's node must know of U's answered call to relay SDP/ICE without a script: the partner,
-- who called, and where the partner is connected (empty while away: then through here). An
-- `l` op with an empty partner: no answered call.
local function link_op(u)
  local l = link(u.name)
  if l and l.ring > 0 then l = nil end
  local p = l and user(l.peer)
  local at = (p and p.connected) and (p.node .. '\n' .. p.conn) or '\n'
  return 'l\n' .. u.conn .. '\n' .. (l and l.peer or '') .. '\n' .. ((l and l.caller) and '1' or '0') .. '\n' .. at
end

-- Tells U's node (if U is connected) U's answered call as it now stands.
local function tell(u)
  if u and u.connected then emit(u.node, link_op(u)) end
end

-- Tells the node of NAME's partner (if connected) where NAME is now.
local function tell_partner(name)
  local l = link(name)
  if not l or l.ring > 0 then return end
  tell(user(l.peer))
end

-- Removes NAME's call; returns the former partner's name. The partner's node hears the call is
-- over (NAME's hears from the script it runs).
local function end_call(name)
  local l = link(name)
  if not l then return nil end
  redis.call('DEL', P .. 'c:' .. name, P .. 'c:' .. l.peer, P .. 'ahead:' .. name, P .. 'ahead:' .. l.peer)
  redis.call('ZREM', P .. 'due', 'r:' .. name, 'r:' .. l.peer)
  tell(user(l.peer))
  return l.peer
end

-- Ends NAME's call on their behalf: the partner gets a hangup from NAME with CODE.
local function hang_up_for(name, code)
  local peer = end_call(name)
  if not peer then return end
  local u = user(peer)
  if u and u.connected then
    emit(u.node, 'h\n' .. u.conn .. '\n' .. peer .. '\n' .. name .. '\n' .. code)
  end
end

-- NAME is gone for good: the record, what was held for it, its call (the partner is told).
local function forget(name)
  redis.call('DEL', P .. 'u:' .. name, P .. 'held:' .. name)
  hang_up_for(name, 'peer_disconnected')
end

-- Sends JSON to U; keeps it while U is away if LINKED. False: U is not online.
local function deliver(u, json, linked)
  if u and u.connected then
    emit(u.node, 's\n' .. u.conn .. '\n' .. json)
    return true
  end
  if u and linked then
    if redis.call('LLEN', P .. 'held:' .. u.name) < HELD_MAX then
      redis.call('RPUSH', P .. 'held:' .. u.name, json)
    end
    return true
  end
  return false
end

-- NAME's session is gone: offline at once, or away for the grace period while in a call.
local function drop(u, t)
  redis.call('SREM', P .. 'n:' .. u.node, u.name)
  redis.call('ZREM', P .. 'online', u.name)
  if link(u.name) and GRACE > 0 then
    redis.call('HSET', P .. 'u:' .. u.name, 'node', '', 'conn', '', 'away', t + GRACE)
    redis.call('ZADD', P .. 'due', t + GRACE, 'a:' .. u.name)
    tell_partner(u.name) -- what the partner sends now is held here
  else
    forget(u.name)
  end
end

-- ARGV[6] conn, [7] name, [8] secret digest or "", [9] early "1"/"0", [10] "1" = the node
-- registers a session it already holds again (after a Redis restart or a lost lease).
local function op_join()
  local conn, name, secret, early, again = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10] == '1'
  local u = user(name)
  local held = {}
  if u then
    local same_session = u.node == NODE and u.conn == conn
    if again and not same_session and u.connected then
      -- While this node could not reach Redis, its user opened the name elsewhere.
      emit(NODE, 'r\n' .. conn .. '\n' .. name)
      return out
    end
    -- (Again and away: this node's own session, signed out while its lease had lapsed.)
    if not again and not same_session and not (secret ~= '' and u.secret == secret) then
      emit(NODE, 't\n' .. conn .. '\n' .. name)
      return out
    end
    if u.connected and not same_session then
      emit(u.node, 'r\n' .. u.conn .. '\n' .. name)
      redis.call('SREM', P .. 'n:' .. u.node, name)
    end
    held = redis.call('LRANGE', P .. 'held:' .. name, 0, -1)
    redis.call('DEL', P .. 'held:' .. name)
    redis.call('ZREM', P .. 'due', 'a:' .. name)
  end
  redis.call('HSET', P .. 'u:' .. name, 'node', NODE, 'conn', conn, 'secret', secret, 'early', early, 'away', 0)
  redis.call('SADD', P .. 'n:' .. NODE, name)
  redis.call('ZADD', P .. 'online', 0, name)
  if again then
    announce(nil)
  else
    announce({ node = NODE, conn = conn, name = name })
    emit(NODE, 'g\n' .. conn .. '\n' .. name)
  end
  -- Back in a call (the grace period): both nodes learn where the other side is now. (Again:
  -- the node compares with what it knew, and ends a call that ended while it did not hear.)
  emit(NODE, link_op(user(name)))
  tell_partner(name)
  for _, json in ipairs(held) do
    emit(NODE, 's\n' .. conn .. '\n' .. json)
  end
  return out
end

-- ARGV[6] conn, [7] name: the connection closed.
local function op_leave()
  local conn, name = ARGV[6], ARGV[7]
  local u = user(name)
  -- Fencing: only the session that holds the name may give it up (a late close of a replaced
  -- connection, or of one from a node thought dead, must not log out the person's new one).
  if not u or u.node ~= NODE or u.conn ~= conn then return out end
  drop(u, now())
  announce(nil)
  return out
end

-- The ops, after an `l` op telling the node the sender's answered call as it now stands: with
-- it, SDP and ICE skip the scripts, and two people on one node go on while Redis is away
-- (see ws.rs).
local function with_link(u)
  table.insert(out, 1, link_op(u))
  return out
end

-- What a ringing caller sends for a classic callee, kept (at most HELD_MAX) for its accept.
local function hold_ahead(from, json)
  if redis.call('LLEN', P .. 'ahead:' .. from) < HELD_MAX then
    redis.call('RPUSH', P .. 'ahead:' .. from, json)
  end
end

-- ARGV[6] conn, [7] from, [8] to, [9] type, [10] call_back msg, [11] stamped JSON,
-- [12] the same with code "cancelled" (a hangup while ringing) or without its SDP (a
-- call_start with the offer, an accept with the answer), [13] that SDP as an `offer` or
-- `answer` ("" if none). Returns the ops, or
-- {"E", code} when the message is refused.
local function op_route()
  local conn, from, to, kind, msg, json = ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
  local f = user(from)
  if not f or f.node ~= NODE or f.conn ~= conn then return out end -- replaced meanwhile
  local t = now()
  local l = link(from)
  if l and l.peer ~= to then l = nil end
  local tu = user(to)
  local media = kind == 'offer' or kind == 'answer' or kind == '_ice' or kind == 'media'
  if kind == 'call_start' then
    if not tu then return { 'E', 'offline' } end
    local tl = link(to)
    if tl and tl.peer ~= from then return { 'E', 'busy' } end
    -- Away and in no call: not reachable (refused before the caller's call ends).
    if not tu.connected and not l then return { 'E', 'offline' } end
    if not l then
      hang_up_for(from, 'cancelled')
      make_link(from, to, t + RING)
    end
    -- The caller's offer rode along ([13] the offer alone, [12] the call_start without it): it
    -- goes as its own message, next (held for a client that takes none while it rings).
    if ARGV[13] ~= '' then
      if not deliver(tu, ARGV[12], l ~= nil) then return { 'E', 'not_online' } end
      local cl = link(from)
      if cl and cl.caller and cl.ring > 0 and not tu.early then
        hold_ahead(from, ARGV[13])
      else
        deliver(tu, ARGV[13], true)
      end
      return with_link(f)
    end
  elseif kind == 'call_back' and l and msg == '1' and l.ring > 0 then
    redis.call('HSET', P .. 'c:' .. from, 'ring', 0)
    redis.call('HSET', P .. 'c:' .. to, 'ring', 0)
    redis.call('ZREM', P .. 'due', 'r:' .. from, 'r:' .. to)
    local caller = l.caller and from or to
    local callee = user(l.caller and to or from)
    -- The caller's node learns of the answered call too (the callee's learns from with_link).
    tell_partner(callee.name)
    local ahead = redis.call('LRANGE', P .. 'ahead:' .. caller, 0, -1)
    redis.call('DEL', P .. 'ahead:' .. caller)
    for _, held in ipairs(ahead) do
      deliver(callee, held, true)
    end
    -- The callee's answer rode along ([13], [12] the accept without it): a caller that does
    -- not take it so gets it as its own message, next.
    if ARGV[13] ~= '' and tu and not tu.early then
      deliver(tu, ARGV[12], true)
      deliver(tu, ARGV[13], true)
      return with_link(f)
    end
  elseif kind == 'call_back' and l and msg == '0' then
    end_call(from)
  elseif kind == 'call_back' and (msg == '1' or msg == '0') then
    return { 'E', 'not_in_call' }
  elseif kind == 'call_back' then
    -- other text is a notice and may go to anyone
  elseif kind == 'hangup' and l then
    if l.caller and l.ring > 0 then json = ARGV[12] end
    end_call(from)
  elseif kind ~= 'answer' and media and l and l.caller and l.ring > 0 and not (tu and tu.early) then
    -- Ahead of the accept, to a client that wants the classic order: held.
    hold_ahead(from, json)
    return out
  elseif media and l then
    -- relayed
  else
    return { 'E', 'not_in_call' }
  end
  if not deliver(tu, json, l ~= nil) then return { 'E', 'not_online' } end
  return with_link(f)
end


-- ARGV[6] from, [7] to, [8] stamped JSON. A message another node published straight to TO's
-- node, which found TO's connection gone (reconnecting): delivered as the route script would,
-- if they are still in a call.
local function op_redeliver()
  local from, to, json = ARGV[6], ARGV[7], ARGV[8]
  local l = link(from)
  if l and l.peer == to then deliver(user(to), json, true) end
  return out
end

-- ARGV[6] conn, [7] name, [8] peer, [9] "1" if NAME called. After Redis lost its data: the
-- call this node's user was in, as the node remembers it, unless either side has another.
local function op_relink()
  local conn, name, peer, caller = ARGV[6], ARGV[7], ARGV[8], ARGV[9] == '1'
  local u = user(name)
  if not u or u.node ~= NODE or u.conn ~= conn or not user(peer) then return out end
  if link(name) or link(peer) then return out end
  if caller then make_link(name, peer, 0) else make_link(peer, name, 0) end
  emit(NODE, link_op(u))
  tell_partner(name)
  return out
end

-- A node whose lease ran out: its users leave (those in a call get the grace period).
local function bury(node, t)
  for _, name in ipairs(redis.call('SMEMBERS', P .. 'n:' .. node)) do
    local u = user(name)
    if u and u.node == node then drop(u, t) end
  end
  redis.call('DEL', P .. 'n:' .. node)
  announce(nil)
end

-- ARGV[6] "1" to renew this node's lease (every other tick), [7] lease ms, [8] a fresh epoch
-- should Redis have none, [9] the canary's number. Then everything due: unanswered calls, grace
-- periods, dead nodes' leases (one sorted set, one read a second). Any node may sweep; whoever
-- runs first does the work. Returns the epoch ('' without renewal), whether the lease was new
-- (it had run out, or Redis lost its data), then the ops.
local function op_tick()
  local t = now()
  local epoch, fresh = '', 0
  if ARGV[6] == '1' then
    epoch = redis.call('SET', P .. 'epoch', ARGV[8], 'NX', 'GET') or ARGV[8]
    fresh = redis.call('ZADD', P .. 'due', t + tonumber(ARGV[7]), 'n:' .. NODE)
    -- The canary: the node's subscription must see it (see node.rs).
    redis.call('PUBLISH', P .. 'n:' .. NODE, 'c' .. ARGV[9])
  end
  for _, due in ipairs(redis.call('ZRANGEBYSCORE', P .. 'due', '-inf', t, 'LIMIT', 0, 500)) do
    redis.call('ZREM', P .. 'due', due)
    local kind, name = string.sub(due, 1, 1), string.sub(due, 3)
    if kind == 'n' then
      bury(name, t)
    elseif kind == 'r' then
      local l = link(name)
      if l and l.caller and l.ring > 0 then
        local u = user(name)
        if u and u.connected then
          emit(u.node, 'a\n' .. u.conn .. '\n' .. name .. '\n' .. l.peer)
        end
        hang_up_for(name, 'no_answer')
      end
    else
      local u = user(name)
      if u and not u.connected then forget(name) end
    end
  end
  table.insert(out, 1, fresh)
  table.insert(out, 1, epoch)
  return out
end

-- ARGV[6] the node's settings ("ring grace cap"). Nodes with other settings may not join a
-- cluster that has live nodes; with none alive, the newcomer's settings become the cluster's.
local function op_settings()
  local alive = false
  for _, due in ipairs(redis.call('ZRANGEBYSCORE', P .. 'due', '(' .. now(), '+inf')) do
    alive = alive or string.sub(due, 1, 2) == 'n:'
  end
  local have = redis.call('GET', P .. 'settings')
  if alive and have and have ~= ARGV[6] then return have end
  redis.call('SET', P .. 'settings', ARGV[6])
  return ARGV[6]
end
