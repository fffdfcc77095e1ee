-- Prelude of the scripts that take part in relations between jobs (see jobmaster/relations),
-- after common.lua: dependencies, groups, and the relay that carries a job's end to the
-- queues that wait on it.
--
-- Every key of a queue shares its hash tag; a script touches one queue only (on Redis
-- Cluster two queues are two slots). Keys are derived from the queue's `status` key
-- (`<ns>:{q}:status` -> `<ns>:{q}:`), so that a script needs only the queue's usual keys:
--   blocked       zset  id -> ms it was blocked (the index of state blocked)
--   waits         hash  id -> msgpack list of its dependencies, each {queue, id, mode
--                       ('all': must succeed, 'any': must end), last state seen ('' none),
--                       seq of that news, kind ('j' a job, 'g' a group)}
--   related       hash  id -> msgpack {d = {{queue, id, mode}...} the jobs that wait on it,
--                       g = {group id, group's queue, index} when it is a group's member}
--   relay         hash  message id -> msgpack message for another queue {t = target queue,
--                       k = kind, ...}; field '#' counts the news sent (their seq)
--   relay_due     zset  message id -> ms when it is next delivered (a delivery moves it a
--                       lease ahead; the target applies a message twice as once)
--   groups        hash  group id -> msgpack {w = 'all'|'any'|quorum, f = 'cancel'|'continue',
--                       t = {queue, id} of its callback, z = size, c = created ms};
--                       '<group id>:m' -> msgpack list of its members {queue, id}
--   group_state   hash  group id -> msgpack {s = state, ok, failed, cancelled, f = ms it
--                       ended, x = 1 once its members were told to stop}
--   group_members hash  '<group id>:<index>' -> '<state>:<seq>' of each member that ended
--   group_index   zset  group id -> created ms;  group_ended  zset  group id -> ended ms
-- A job's end is news for its dependents and its group: applied at once in its own queue,
-- sent through the relay to another. News carries a seq (increasing per queue): older news
-- of the same job is ignored, so a message applied twice, or late, changes nothing.

-- A queue's `related` hash, from its status key: it exists once a job of the queue has a
-- relation, and the scripts that end jobs check it before anything else.
local function related_of(status)
  return sub(status, 1, -7) .. 'related'
end

-- What relations do, as a table of functions. A script defines its local functions anew at
-- each call, whether it runs them or not (tens of thousands of Redis instructions for
-- these): they are made by a call of this function, only where there is something to apply
-- (relate.lua; the scripts that end jobs, for a queue whose jobs have relations), so that a
-- job without relations does not pay for them.
local function relations()
  local FINAL = {succeeded = true, failed = true, cancelled = true}

  -- The consumer group of every queue's streams (jobmaster.store.connection.GROUP).
  local GROUP = 'workers'

  -- The key `name` of the queue whose keys start with `prefix`.
  local function rkey(prefix, name)
    return prefix .. name
  end

  -- The prefix of a queue's keys and the queue's name, from its status key.
  local function queue_of(status)
    local prefix = sub(status, 1, -7)
    return prefix, match(prefix, '{([^{}]*)}:$')
  end

  -- Write a message for another queue in this queue's outbox; returns its id.
  local function relay_out(prefix, sent, message, now)
    local id = text(rcall('HINCRBY', rkey(prefix, 'relay'), '#', 1))
    rcall('HSET', rkey(prefix, 'relay'), id, cmsgpack.pack(message))
    rcall('ZADD', rkey(prefix, 'relay_due'), now, id)
    sent[#sent + 1] = id
    return id
  end

  -- The next seq of news sent by this queue.
  local function next_seq(prefix)
    return rcall('HINCRBY', rkey(prefix, 'relay'), '#', 1)
  end

  -- Whether a dependency entry is met.
  local function dep_met(e)
    return e[4] == 'succeeded' or (e[3] == 'any' and FINAL[e[4]] == true)
  end

  -- A blocked job whose dependencies are all met becomes queued (or scheduled, when its
  -- delay has not passed yet).
  local function unblock(prefix, id, st, now, changes)
    rcall('ZREM', rkey(prefix, 'blocked'), id)
    if st.d and st.d > now then
      st.s = 'scheduled'
      schedule(rkey(prefix, 'scheduled'), rkey(prefix, 'timers'), id, st.d)
    else
      st.s, st.d = 'queued', nil
      st.e = add_entry(rkey(prefix, 'stream:' .. st.b), GROUP, id)
      rcall('ZADD', rkey(prefix, 'queued'), entry_score(st.e), id)
    end
    rcall('HSET', rkey(prefix, 'status'), id, status_text(st))
    changes[#changes + 1] = {id, st.s}
  end

  -- News: job (or group) `dep` of queue `dq` reached `state`; apply it to its dependents
  -- `ids` in this queue.
  local function apply_ended(prefix, dq, dep, state, seq, ids, now, changes)
    for _, id in ipairs(ids) do
      local raw = rcall('HGET', rkey(prefix, 'waits'), id)
      if raw then
        local waits, changed, all_met, stuck = cmsgpack.unpack(raw), false, true, false
        for _, e in ipairs(waits) do
          if e[1] == dq and e[2] == dep and seq > e[5] then
            e[4], e[5], changed = state, seq, true
            if not dep_met(e) and FINAL[state] then stuck = true end
          end
          if not dep_met(e) then all_met = false end
        end
        if changed then
          rcall('HSET', rkey(prefix, 'waits'), id, cmsgpack.pack(waits))
          local sraw = rcall('HGET', rkey(prefix, 'status'), id)
          local st = sraw and read_status(sraw)
          if st and st.s == 'blocked' then
            if all_met then
              unblock(prefix, id, st, now, changes)
            elseif stuck then
              changes[#changes + 1] = {id, 'blocked'}  -- blocked by a dependency that failed
            end
          end
        end
      end
    end
  end

  -- Add `dependent` {queue, id, mode} to the jobs that wait on `id` (once).
  local function add_dependent(prefix, id, dependent)
    local related = rkey(prefix, 'related')
    local raw = rcall('HGET', related, id)
    local rel = raw and cmsgpack.unpack(raw) or {}
    rel.d = rel.d or {}
    for _, d in ipairs(rel.d) do
      if d[1] == dependent[1] and d[2] == dependent[2] then return end
    end
    rel.d[#rel.d + 1] = dependent
    rcall('HSET', related, id, cmsgpack.pack(rel))
  end

  -- The state of a job of this queue that ended, or nil.
  local function final_state(prefix, id)
    local raw = rcall('HGET', rkey(prefix, 'status'), id)
    local st = raw and read_status(raw)
    if st and FINAL[st.s] then return st.s end
    return nil
  end

  -- A group's state from its tally.
  local function group_verdict(def, gs)
    local bad, size, w = gs.failed + gs.cancelled, def.z, def.w
    if w == 'all' then
      if gs.ok == size then return 'succeeded' end
      if bad > 0 and (def.f == 'cancel' or gs.ok + bad == size) then return 'failed' end
    elseif w == 'any' then
      if gs.ok >= 1 then return 'succeeded' end
      if bad == size then return 'failed' end
    else
      if gs.ok >= w then return 'succeeded' end
      if size - bad < w then return 'failed' end
    end
    return 'running'
  end

  -- The ids of {queue, id, ...} pairs, by queue, and the queues in their first order.
  local function ids_by_queue(list)
    local by_queue, order = {}, {}
    for _, p in ipairs(list) do
      local ids = by_queue[p[1]]
      if not ids then
        ids = {}
        by_queue[p[1]] = ids
        order[#order + 1] = p[1]
      end
      ids[#ids + 1] = p[2]
    end
    return by_queue, order
  end

  -- Tell the members of a group that have not ended to stop (through the relay, one message
  -- per queue; cancelling one that ended changes nothing).
  local function stop_members(prefix, gid, now, sent)
    local members = cmsgpack.unpack(rcall('HGET', rkey(prefix, 'groups'), gid .. ':m'))
    local by_queue, order = ids_by_queue(members)
    for _, q in ipairs(order) do
      relay_out(prefix, sent, {t = q, k = 'cancel', ids = by_queue[q], r = 'its group ' .. gid
        .. ' failed'}, now)
    end
  end

  -- News to the callback of a group whose state changed (local, or through the relay).
  local function tell_callback(prefix, own, gid, def, state, now, changes, sent)
    if not def.t then return end
    local seq = next_seq(prefix)
    if def.t[1] == own then
      apply_ended(prefix, own, gid, state, seq, {def.t[2]}, now, changes)
    else
      relay_out(prefix, sent, {t = def.t[1], k = 'ended', q = own, id = gid, s = state, n = seq,
        j = {def.t[2]}}, now)
    end
  end

  -- A group's state changed to `state`: its index of ended groups, events, callback.
  local function group_moved(prefix, own, gid, def, gs, state, now, changes, sent)
    gs.s = state
    if state == 'running' then
      gs.f, gs.x = nil, nil
      rcall('ZREM', rkey(prefix, 'group_ended'), gid)
    else
      gs.f = now
      rcall('ZADD', rkey(prefix, 'group_ended'), now, gid)
    end
    if state ~= 'running' then changes[#changes + 1] = {gid, state, 'group'} end
    if state == 'failed' and def.f == 'cancel' and not gs.x then
      gs.x = 1
      stop_members(prefix, gid, now, sent)
    end
    tell_callback(prefix, own, gid, def, state, now, changes, sent)
  end

  -- News: member `index` of group `gid` (kept in this queue) reached final state `state`.
  local function apply_member(prefix, own, gid, index, state, seq, now, changes, sent)
    local field = gid .. ':' .. index
    local members = rkey(prefix, 'group_members')
    local prev = rcall('HGET', members, field)
    local pstate, pseq = nil, 0
    if prev then
      pstate, pseq = match(prev, '^(%a+):(%d+)$')
      pseq = tonumber(pseq)
    end
    if seq <= pseq then return end
    rcall('HSET', members, field, state .. ':' .. text(seq))
    local raw, sraw = rcall('HGET', rkey(prefix, 'groups'), gid),
      rcall('HGET', rkey(prefix, 'group_state'), gid)
    if not raw or not sraw then return end
    local def, gs = cmsgpack.unpack(raw), cmsgpack.unpack(sraw)
    local count = {succeeded = 'ok', failed = 'failed', cancelled = 'cancelled'}
    if pstate and count[pstate] then gs[count[pstate]] = gs[count[pstate]] - 1 end
    gs[count[state]] = gs[count[state]] + 1
    if gs.s ~= 'cancelled' and gs.s ~= 'succeeded' then
      local verdict = group_verdict(def, gs)
      if verdict ~= gs.s then
        group_moved(prefix, own, gid, def, gs, verdict, now, changes, sent)
      end
    end
    rcall('HSET', rkey(prefix, 'group_state'), gid, cmsgpack.pack(gs))
  end

  -- Members of group `gid` were retried: `members` lists {index, seq of the end the retry
  -- followed}; each is counted as running again unless news of a later end came meanwhile.
  -- The group's state is decided again (a failed group may run again).
  local function reopen_members(prefix, own, gid, members, now, changes, sent)
    local raw, sraw = rcall('HGET', rkey(prefix, 'groups'), gid),
      rcall('HGET', rkey(prefix, 'group_state'), gid)
    if not raw or not sraw then return end
    local def, gs = cmsgpack.unpack(raw), cmsgpack.unpack(sraw)
    local count = {succeeded = 'ok', failed = 'failed', cancelled = 'cancelled'}
    local field_of = rkey(prefix, 'group_members')
    for _, m in ipairs(members) do
      local field = gid .. ':' .. text(m[1])
      local state, seq = match(rcall('HGET', field_of, field) or '', '^(%a+):(%d+)$')
      if state and tonumber(seq) == m[2] and count[state] then
        gs[count[state]] = gs[count[state]] - 1
        rcall('HSET', field_of, field, 'retried:' .. seq)
      end
    end
    if gs.s == 'failed' then
      local verdict = group_verdict(def, gs)
      if verdict ~= gs.s then
        group_moved(prefix, own, gid, def, gs, verdict, now, changes, sent)
      end
    end
    rcall('HSET', rkey(prefix, 'group_state'), gid, cmsgpack.pack(gs))
  end

  -- Jobs of this queue reached final states (`ended`: {{id, state}, ...}): news for the jobs
  -- that wait on them and for their groups.
  local function jobs_ended(status, ended, now, maxlen)
    local prefix, own = queue_of(status)
    local related = rkey(prefix, 'related')
    local ids = {}
    for k, e in ipairs(ended) do ids[k] = e[1] end
    local raws = rcall('HMGET', related, unpack(ids))
    local changes, sent = {}, {}
    for k, raw in ipairs(raws) do
      if raw then
        local rel, id, state = cmsgpack.unpack(raw), ended[k][1], ended[k][2]
        local seq = next_seq(prefix)
        local by_queue, order = ids_by_queue(rel.d or {})
        if by_queue[own] then
          apply_ended(prefix, own, id, state, seq, by_queue[own], now, changes)
        end
        for _, q in ipairs(order) do
          if q ~= own then
            relay_out(prefix, sent, {t = q, k = 'ended', q = own, id = id, s = state, n = seq,
              j = by_queue[q]}, now)
          end
        end
        local g = rel.g
        if g then
          if g[2] == own then
            apply_member(prefix, own, g[1], g[3], state, seq, now, changes, sent)
          else
            relay_out(prefix, sent, {t = g[2], k = 'member', g = g[1], i = g[3], s = state,
              n = seq}, now)
          end
        end
      end
    end
    emit(rkey(prefix, 'events'), maxlen, changes)
  end

  -- Create a group in this queue: its definition, members and tally.
  local function create_group(prefix, g, now)
    if rcall('HSETNX', rkey(prefix, 'groups'), g.id, g.def) == 0 then return end
    rcall('HSET', rkey(prefix, 'groups'), g.id .. ':m', g.members)
    rcall('HSET', rkey(prefix, 'group_state'), g.id,
      cmsgpack.pack({s = 'running', ok = 0, failed = 0, cancelled = 0}))
    rcall('ZADD', rkey(prefix, 'group_index'), now, g.id)
  end

  -- Create a job of this queue with relations: `j` = {id, record, band, delay ms, limits line
  -- ('' none), deps = {{queue, id, mode, kind}...}, g = {group id, group's queue, index}}.
  -- Returns 1 when created, 0 when the id existed. A dependency in this queue that ended
  -- counts at once; one in another queue is asked to send news of its end (a 'watch').
  local function create_related(prefix, own, j, now, changes, sent)
    local id = j.id
    if rcall('HSETNX', rkey(prefix, 'jobs'), id, j.record) == 0 then return 0 end
    local waits, met = {}, true
    for _, dep in ipairs(j.deps or {}) do
      local dq, did, mode, kind = dep[1], dep[2], dep[3], dep[4] or 'j'
      local e = {dq, did, mode, '', 0, kind}
      if dq == own and kind == 'j' then
        add_dependent(prefix, did, {own, id, mode})
        local state = final_state(prefix, did)
        if state then e[4] = state end
      elseif dq ~= own then
        relay_out(prefix, sent, {t = dq, k = 'watch', id = did, q = own, j = id, m = mode,
          kind = kind}, now)
      end
      if kind == 'g' and dq == own then
        local sraw = rcall('HGET', rkey(prefix, 'group_state'), did)
        if sraw then
          local s = cmsgpack.unpack(sraw).s
          if s ~= 'running' then e[4] = s end
        end
      end
      if not dep_met(e) then met = false end
      waits[#waits + 1] = e
    end
    if #waits > 0 then rcall('HSET', rkey(prefix, 'waits'), id, cmsgpack.pack(waits)) end
    if j.g then
      local related = rkey(prefix, 'related')
      local raw = rcall('HGET', related, id)
      local rel = raw and cmsgpack.unpack(raw) or {}
      rel.g = j.g
      rcall('HSET', related, id, cmsgpack.pack(rel))
    end
    local due = j.delay > 0 and now + j.delay or nil
    if not met then
      rcall('HSET', rkey(prefix, 'status'), id, encode_status('blocked', 0, j.band, nil, nil, nil,
        due))
      rcall('ZADD', rkey(prefix, 'blocked'), now, id)
      changes[#changes + 1] = {id, 'blocked'}
    elseif due then
      schedule(rkey(prefix, 'scheduled'), rkey(prefix, 'timers'), id, due)
      rcall('HSET', rkey(prefix, 'status'), id, encode_status('scheduled', 0, j.band, nil, nil,
        nil, due))
      changes[#changes + 1] = {id, 'scheduled'}
    else
      local entry = add_entry(rkey(prefix, 'stream:' .. j.band), GROUP, id)
      rcall('HSET', rkey(prefix, 'status'), id, encode_status('queued', 0, j.band, entry))
      rcall('ZADD', rkey(prefix, 'queued'), entry_score(entry), id)
      changes[#changes + 1] = {id, 'queued'}
    end
    if j.line ~= '' then
      controls_created(parse_limits(j.line), j.line, rkey(prefix, 'limits'), rkey(prefix, 'unique'),
        rkey(prefix, 'limit_keys'), id)
    end
    return 1
  end
  return {
    queue_of = queue_of, rkey = rkey, relay_out = relay_out, next_seq = next_seq,
    add_dependent = add_dependent, final_state = final_state, apply_ended = apply_ended,
    apply_member = apply_member, reopen_members = reopen_members, stop_members = stop_members,
    jobs_ended = jobs_ended, create_group = create_group, create_related = create_related,
  }
end

-- Jobs of this queue reached final states (`ended`: {{id, state}, ...}): news for the jobs
-- that wait on them and for their groups. One EXISTS when the queue has no relations.
local function relations_ended(status, ended, now, maxlen)
  if #ended == 0 or rcall('EXISTS', related_of(status)) == 0 then return end
  relations().jobs_ended(status, ended, now, maxlen)
end
