--[[ Apply one message of the relations between jobs to this queue (see relations.lua): jobs
created with their relations (and a group), news of a job's or a group's end, a watch (a
job of another queue waits on one of this queue), a group's cancellation, or members of a
group retried (counted as running again).
KEYS[1] status of the queue (its other keys are derived from it: see relations.lua)
ARGV[1] the message (msgpack)  ARGV[2] events maxlen
Returns {created: per job of an 'enqueue', 1 when created, 0 when its id existed; the ids
of the messages this call wrote in the queue's outbox, for the caller to deliver}.
Applying a message twice changes nothing more than applying it once. ]]
local r = relations()
local queue_of, rkey, relay_out, next_seq = r.queue_of, r.rkey, r.relay_out, r.next_seq
local add_dependent, final_state, apply_ended = r.add_dependent, r.final_state, r.apply_ended
local apply_member, reopen_members, stop_members = r.apply_member, r.reopen_members,
  r.stop_members
local create_group, create_related = r.create_group, r.create_related
local prefix, own = queue_of(KEYS[1])
local message, maxlen = cmsgpack.unpack(ARGV[1]), ARGV[2]
local now = now_ms()
local changes, sent, created = {}, {}, {}
local kind = message.k
if kind == 'enqueue' then
  if message.grp then create_group(prefix, message.grp, now) end
  for k, j in ipairs(message.jobs) do
    created[k] = create_related(prefix, own, j, now, changes, sent)
  end
  for _, out in ipairs(message.out or {}) do relay_out(prefix, sent, out, now) end
elseif kind == 'watch' then
  local state
  if message.kind == 'g' then
    local raw = rcall('HGET', rkey(prefix, 'group_state'), message.id)
    state = raw and cmsgpack.unpack(raw).s
    if state == 'running' then state = nil end
  else
    add_dependent(prefix, message.id, {message.q, message.j, message.m})
    state = final_state(prefix, message.id)
  end
  if state then
    relay_out(prefix, sent, {t = message.q, k = 'ended', q = own, id = message.id, s = state,
      n = next_seq(prefix), j = {message.j}}, now)
  end
elseif kind == 'ended' then
  apply_ended(prefix, message.q, message.id, message.s, message.n, message.j, now, changes)
elseif kind == 'member' then
  apply_member(prefix, own, message.g, message.i, message.s, message.n, now, changes, sent)
elseif kind == 'cancel_group' then
  local gid = message.g
  local raw, sraw = rcall('HGET', rkey(prefix, 'groups'), gid),
    rcall('HGET', rkey(prefix, 'group_state'), gid)
  if raw and sraw then
    local def, gs = cmsgpack.unpack(raw), cmsgpack.unpack(sraw)
    if gs.s ~= 'cancelled' and gs.s ~= 'succeeded' then  -- a completed group stays so
      gs.s, gs.f, gs.x = 'cancelled', now, 1
      rcall('ZADD', rkey(prefix, 'group_ended'), now, gid)
      changes[#changes + 1] = {gid, 'cancelled', 'group'}
      stop_members(prefix, gid, now, sent)
      if def.t then
        relay_out(prefix, sent, {t = def.t[1], k = 'cancel', ids = {def.t[2]},
          r = 'its group ' .. gid .. ' was cancelled'}, now)
      end
      rcall('HSET', rkey(prefix, 'group_state'), gid, cmsgpack.pack(gs))
    end
  end
elseif kind == 'reopen' then
  reopen_members(prefix, own, message.g, message.i, now, changes, sent)
end
emit(rkey(prefix, 'events'), maxlen, changes)
return {created, sent}
