namespace AgentWorker.Storage.Redis;

/// <summary>
/// The Lua scripts that make each queue step atomic. Every script gets the key prefix as ARGV[1], the calling queue
/// instance's id as ARGV[2] and, where it changes anything, the caller's clock as ARGV[3] (Unix ms): time always comes from the worker's
/// <see cref="TimeProvider"/>, never from the Redis server. KEYS[1] is always the ready set, so a cluster
/// routes the script to the slot that holds every key of the queue (they share one hash tag).
/// </summary>
/// <remarks>
/// Job hash fields: spec, agent, priority, seq, max_attempts, attempts, state, run_at, created_at, updated_at,
/// finished_at, error, result, cancel (0/1), token/owner/lease_expires while leased, evseq (last event seq).
/// Attempts are a list of JSON objects with string values (n, w, s, f, o, x, e); only the last one can be open.
/// </remarks>
internal static class RedisScripts
{
    // Lua numbers are doubles and become Redis arguments through "%.14g", so ready scores (up to ~2e15) are
    // formatted by hand. Priority (-1000..1000) dominates, the enqueue sequence breaks ties oldest first.
    private const string Library = """
        local P = ARGV[1]
        -- Which queue instance runs the script: its own wake-ups come back to it, and it has woken its waiters already.
        local ORIGIN = ARGV[2]
        -- Bounds: events kept per job (trimmed approximately, which is cheaper) and dead letters kept.
        local MAX_EVENTS = 10000
        local MAX_DEAD = 10000
        local TERMINAL = { succeeded = true, failed = true, cancelled = true, timed_out = true, dead = true }

        local function job_key(id) return P .. ':job:' .. id end

        local function ready_score(priority, seq) return string.format('%.0f', (1000 - tonumber(priority)) * 1e12 + tonumber(seq)) end

        local function make_ready(id, key)
          local f = redis.call('HMGET', key, 'priority', 'seq')
          redis.call('ZADD', P .. ':ready', ready_score(f[1], f[2]), id)
        end

        local function set_state(id, key, new)
          local old = redis.call('HGET', key, 'state')
          if old == new then return end
          if old then redis.call('ZREM', P .. ':state:' .. old, id) end
          redis.call('ZADD', P .. ':state:' .. new, redis.call('HGET', key, 'seq'), id)
          redis.call('HSET', key, 'state', new)
        end

        -- Appends an event whose seq the caller already counted in the job hash's evseq.
        local function push_event(id, seq, attempt, now, kind, message, stream)
          local events = P .. ':events:' .. id
          if stream then
            redis.call('XADD', events, 'MAXLEN', '~', MAX_EVENTS, '0-' .. seq, 'a', attempt, 't', now, 'k', kind, 'm', message, 's', stream)
          else
            redis.call('XADD', events, 'MAXLEN', '~', MAX_EVENTS, '0-' .. seq, 'a', attempt, 't', now, 'k', kind, 'm', message)
          end
        end

        local function add_event(id, key, attempt, now, kind, message, stream)
          push_event(id, redis.call('HINCRBY', key, 'evseq', 1), attempt, now, kind, message, stream)
        end

        -- The hot paths know the old state and the seq already, so they move the job between state indexes directly.
        local function move_state(id, seq, old, new)
          if old then redis.call('ZREM', P .. ':state:' .. old, id) end
          redis.call('ZADD', P .. ':state:' .. new, seq, id)
        end

        -- "state" or "state: reason", so the event log tells the job's story.
        local function state_event(id, key, attempt, now, state, reason)
          local message = state
          if reason and reason ~= '' then message = state .. ': ' .. reason end
          add_event(id, key, attempt, now, 'state', message, nil)
        end

        local function close_attempt(id, now, outcome, exit_code, err)
          local attempts = P .. ':attempts:' .. id
          local last = redis.call('LINDEX', attempts, -1)
          if not last then return end
          local a = cjson.decode(last)
          a.f = now
          a.o = outcome
          if exit_code and exit_code ~= '' then a.x = exit_code end
          if err then a.e = err end
          redis.call('LSET', attempts, -1, cjson.encode(a))
        end

        local function clear_lease(id, key)
          redis.call('HDEL', key, 'token', 'owner', 'lease_expires')
          redis.call('ZREM', P .. ':leases', id)
        end

        -- One job became runnable: one waiting worker (in each process) looks again.
        local function wake() redis.call('PUBLISH', P .. ':signal', 'wake:' .. ORIGIN) end

        -- Many jobs became runnable, or when the next one is due changed: every waiting worker looks again.
        local function wake_all() redis.call('PUBLISH', P .. ':signal', 'wakeall:' .. ORIGIN) end

        local function read_job(id)
          return { redis.call('HGETALL', job_key(id)), redis.call('LRANGE', P .. ':attempts:' .. id, 0, -1) }
        end

        -- Bounded per call so one script never stalls the server; the rest follow on the next call.
        local function promote(now)
          local due = redis.call('ZRANGEBYSCORE', P .. ':delayed', '-inf', now, 'LIMIT', 0, 1000)
          for _, id in ipairs(due) do
            redis.call('ZREM', P .. ':delayed', id)
            if redis.call('EXISTS', job_key(id)) == 1 then make_ready(id, job_key(id)) end
          end
        end

        local function give_back(id, now)
          local key = job_key(id)
          redis.call('ZREM', P .. ':leases', id)
          -- A job hash deleted by hand leaves nothing to give back.
          if redis.call('EXISTS', key) == 0 then return end
          local f = redis.call('HMGET', key, 'cancel', 'attempts', 'max_attempts')
          -- A requested cancel is honoured, an exhausted budget is dead, otherwise the job runs again.
          local state = 'queued'
          if f[1] == '1' then
            state = 'cancelled'
          elseif tonumber(f[2]) >= tonumber(f[3]) then
            state = 'dead'
          end
          close_attempt(id, now, 'lease_expired', nil, 'lease expired')
          clear_lease(id, key)
          redis.call('HSET', key, 'error', 'lease expired', 'updated_at', now)
          if state == 'queued' then
            redis.call('HDEL', key, 'finished_at')
            make_ready(id, key)
          else
            redis.call('HSET', key, 'finished_at', now)
          end
          set_state(id, key, state)
          state_event(id, key, f[2], now, state, 'lease expired')
        end

        local function recover(now)
          local expired = redis.call('ZRANGEBYSCORE', P .. ':leases', '-inf', now, 'LIMIT', 0, 1000)
          for _, id in ipairs(expired) do give_back(id, now) end
          return #expired
        end

        """;

    // ARGV: P, origin, now, then per job 8 values: id, spec, agent ('' = default), priority, max_attempts, run_at,
    // intake list ('' = none), raw value. From the intake, a job is stored only if this call still finds its raw value
    // there: whoever removes it owns it, so a raw push is taken once even when a recovery put it back meanwhile.
    // Returns per job {-1} (raw value already taken), {0, job} (id existed, or came earlier in this call) or {1} (stored
    // as sent: the caller knows the record without reading it back).
    // Other processes are told how many jobs became runnable ('wake:<origin>:<count>').
    internal const string Enqueue = Library + """
        local now = ARGV[3]
        local results, runnable = {}, 0
        for i = 4, #ARGV, 8 do
          local id = ARGV[i]
          local key = job_key(id)
          local agent, run_at, intake = ARGV[i + 2], ARGV[i + 5], ARGV[i + 6]
          if intake ~= '' and redis.call('LREM', intake, 1, ARGV[i + 7]) == 0 then
            results[#results + 1] = { -1 }
          elseif redis.call('EXISTS', key) == 1 then
            results[#results + 1] = { 0, read_job(id) }
          else
            local seq = redis.call('INCR', P .. ':seq')
            local priority = ARGV[i + 3]
            redis.call('HSET', key, 'spec', ARGV[i + 1], 'agent', agent, 'priority', priority, 'max_attempts', ARGV[i + 4],
              'run_at', run_at, 'seq', seq, 'attempts', 0, 'cancel', 0, 'created_at', now, 'updated_at', now,
              'state', 'queued', 'evseq', 1)
            redis.call('ZADD', P .. ':all', seq, id)
            if agent ~= '' then redis.call('ZADD', P .. ':agent:' .. agent, seq, id) end
            move_state(id, seq, nil, 'queued')
            if tonumber(run_at) <= tonumber(now) then
              redis.call('ZADD', P .. ':ready', ready_score(priority, seq), id)
              runnable = runnable + 1
            else
              redis.call('ZADD', P .. ':delayed', run_at, id)
            end
            push_event(id, 1, 0, now, 'state', 'queued', nil)
            results[#results + 1] = { 1 }
          end
        end
        if runnable > 0 then redis.call('PUBLISH', P .. ':signal', 'wake:' .. ORIGIN .. ':' .. runnable) end
        return results
        """;

    // ARGV: P, origin, now, lease expiry, then (token, worker) per waiting lease. Claims a job for as many of them as
    // there are runnable jobs, in order. Returns {next due run_at or '', job...}: one job per claimed lease.
    internal const string Lease = Library + """
        local now = ARGV[3]
        promote(now)
        local recovered = recover(now)
        if recovered > 0 then wake_all() end
        local result = { '' }
        local wanted = (#ARGV - 4) / 2
        while #result - 1 < wanted do
          local popped = redis.call('ZPOPMIN', P .. ':ready', wanted - (#result - 1))
          if #popped == 0 then break end
          for p = 1, #popped, 2 do
            local id = popped[p]
            local key = job_key(id)
            local f = redis.call('HMGET', key, 'attempts', 'state', 'seq', 'evseq')
            -- Skips ids whose job hash was deleted by hand, rather than failing every lease on them.
            if f[2] then
              local at = 5 + 2 * (#result - 1)
              local token, worker = ARGV[at], ARGV[at + 1]
              local attempt = tonumber(f[1]) + 1
              local evseq = tonumber(f[4] or 0) + 1
              redis.call('HSET', key, 'attempts', attempt, 'token', token, 'owner', worker, 'lease_expires', ARGV[4],
                'updated_at', now, 'state', 'running', 'evseq', evseq)
              redis.call('ZADD', P .. ':leases', ARGV[4], id)
              move_state(id, f[3], f[2], 'running')
              redis.call('RPUSH', P .. ':attempts:' .. id, cjson.encode({ n = tostring(attempt), w = worker, s = now }))
              push_event(id, evseq, attempt, now, 'state', 'running: ' .. worker, nil)
              result[#result + 1] = read_job(id)
            end
          end
        end
        if #result - 1 < wanted then
          local next_due = redis.call('ZRANGE', P .. ':delayed', 0, 0, 'WITHSCORES')
          result[1] = next_due[2] or ''
        end
        return result
        """;

    // ARGV: P, origin, now, id, token, lease expiry. Returns -1 (lease lost) or the cancel flag (0/1).
    // An expired lease that nobody took over yet still carries its token, so renewing it is fine.
    internal const string Extend = Library + """
        local key = job_key(ARGV[4])
        if redis.call('HGET', key, 'token') ~= ARGV[5] then return -1 end
        redis.call('HSET', key, 'lease_expires', ARGV[6])
        redis.call('ZADD', P .. ':leases', ARGV[6], ARGV[4])
        return tonumber(redis.call('HGET', key, 'cancel'))
        """;

    // ARGV: P, origin, now, then (id, token, result JSON, exit code ('' = none)) per completion.
    // Returns per completion 1, or 0 when its lease was lost.
    internal const string Complete = Library + """
        local now = ARGV[3]
        local results = {}
        for i = 4, #ARGV, 4 do
          local id = ARGV[i]
          local key = job_key(id)
          local f = redis.call('HMGET', key, 'token', 'attempts', 'seq', 'evseq', 'state')
          if f[1] ~= ARGV[i + 1] then
            results[#results + 1] = 0
          else
            local evseq = tonumber(f[4] or 0) + 1
            redis.call('HDEL', key, 'token', 'owner', 'lease_expires', 'error')
            redis.call('HSET', key, 'result', ARGV[i + 2], 'updated_at', now, 'finished_at', now, 'state', 'succeeded', 'evseq', evseq)
            redis.call('ZREM', P .. ':leases', id)
            move_state(id, f[3], f[5], 'succeeded')
            close_attempt(id, now, 'succeeded', ARGV[i + 3], nil)
            push_event(id, evseq, f[2], now, 'state', 'succeeded', nil)
            results[#results + 1] = 1
          end
        end
        return results
        """;

    // ARGV: P, origin, now, id, token, state (retrying|failed|timed_out|cancelled), attempt outcome, error,
    // result JSON ('' = none), exit code ('' = none), run_at of the retry.
    // Returns the state the job moved to (retrying becomes dead once the budget is spent), or nil when the lease was lost.
    internal const string Fail = Library + """
        local id, now = ARGV[4], ARGV[3]
        local key = job_key(id)
        if redis.call('HGET', key, 'token') ~= ARGV[5] then return false end
        local f = redis.call('HMGET', key, 'attempts', 'max_attempts')
        local state = ARGV[6]
        if state == 'retrying' and tonumber(f[1]) >= tonumber(f[2]) then state = 'dead' end
        clear_lease(id, key)
        redis.call('HSET', key, 'error', ARGV[8], 'updated_at', now)
        if ARGV[9] ~= '' then redis.call('HSET', key, 'result', ARGV[9]) else redis.call('HDEL', key, 'result') end
        if state == 'retrying' then
          redis.call('HSET', key, 'run_at', ARGV[11])
          redis.call('HDEL', key, 'finished_at')
          redis.call('ZADD', P .. ':delayed', ARGV[11], id)
        else
          redis.call('HSET', key, 'finished_at', now)
        end
        close_attempt(id, now, ARGV[7], ARGV[10], ARGV[8])
        set_state(id, key, state)
        state_event(id, key, f[1], now, state, ARGV[8])
        -- Waiting workers recompute when to look again, which may now be the end of this backoff.
        if state == 'retrying' then wake_all() end
        return state
        """;

    // ARGV: P, origin, now, id, token, worker. The attempt is not counted: the worker gave the job back, it did not fail it.
    // Returns 1, or 0 when the lease was lost (the job already belongs to someone else).
    internal const string Release = Library + """
        local id, now = ARGV[4], ARGV[3]
        local key = job_key(id)
        if redis.call('HGET', key, 'token') ~= ARGV[5] then return 0 end
        local attempt = redis.call('HGET', key, 'attempts')
        redis.call('HINCRBY', key, 'attempts', -1)
        clear_lease(id, key)
        redis.call('HSET', key, 'updated_at', now)
        close_attempt(id, now, 'released', nil, nil)
        set_state(id, key, 'queued')
        make_ready(id, key)
        state_event(id, key, attempt, now, 'queued', 'released by ' .. ARGV[6])
        wake()
        return 1
        """;

    // ARGV: P, origin, now, id, reason. Returns not_found, finished, cancelled or requested.
    // A running job can only be stopped by its worker: the flag is stored (seen on renewal) and published
    // (seen at once by the process holding the lease).
    internal const string Cancel = Library + """
        local id, now = ARGV[4], ARGV[3]
        local key = job_key(id)
        local state = redis.call('HGET', key, 'state')
        if not state then return 'not_found' end
        if TERMINAL[state] then return 'finished' end
        local attempt = redis.call('HGET', key, 'attempts')
        if state ~= 'running' then
          redis.call('ZREM', P .. ':ready', id)
          redis.call('ZREM', P .. ':delayed', id)
          redis.call('HSET', key, 'error', ARGV[5], 'finished_at', now, 'updated_at', now)
          set_state(id, key, 'cancelled')
          state_event(id, key, attempt, now, 'cancelled', ARGV[5])
          return 'cancelled'
        end
        redis.call('HSET', key, 'cancel', 1, 'updated_at', now)
        add_event(id, key, attempt, now, 'log', 'cancel requested: ' .. ARGV[5], nil)
        redis.call('PUBLISH', P .. ':signal', 'cancel:' .. id)
        return 'requested'
        """;

    // ARGV: P, origin, now, id. Returns not_found, succeeded, not_finished or requeued.
    internal const string Retry = Library + """
        local id, now = ARGV[4], ARGV[3]
        local key = job_key(id)
        local state = redis.call('HGET', key, 'state')
        if not state then return 'not_found' end
        if state == 'succeeded' then return 'succeeded' end
        if not TERMINAL[state] then return 'not_finished' end
        redis.call('HSET', key, 'attempts', 0, 'run_at', now, 'cancel', 0, 'updated_at', now)
        redis.call('HDEL', key, 'error', 'result', 'finished_at')
        set_state(id, key, 'queued')
        make_ready(id, key)
        state_event(id, key, 0, now, 'queued', 'manual retry')
        wake()
        return 'requeued'
        """;

    // ARGV: P, origin, now. Returns how many expired leases were given back.
    internal const string Recover = Library + """
        local recovered = recover(ARGV[3])
        if recovered > 0 then wake_all() end
        return recovered
        """;

    // ARGV: P, origin, now, count. Due delayed jobs are promoted first, so the answer is what a lease would take.
    internal const string Peek = Library + """
        promote(ARGV[3])
        local count = tonumber(ARGV[4])
        if count == 0 then return {} end
        local jobs = {}
        for _, id in ipairs(redis.call('ZRANGE', P .. ':ready', 0, count - 1)) do jobs[#jobs + 1] = read_job(id) end
        return jobs
        """;

    // ARGV: P, origin, id. Returns the job or nil.
    internal const string Get = Library + """
        if redis.call('EXISTS', job_key(ARGV[3])) == 0 then return false end
        return read_job(ARGV[3])
        """;

    // ARGV: P, origin, state ('' = any), agent ('' = any), offset, limit, repo ('' = any; a substring of the repository URL).
    // Returns {total, job...}, newest first. One filter is an index of its own; filters the index does not cover are
    // checked job by job over the narrowest index (a rare query, from the CLI or the dashboard).
    internal const string List = Library + """
        local state, agent, repo = ARGV[3], ARGV[4], ARGV[7]
        local offset, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
        local index = P .. ':all'
        if state ~= '' then index = P .. ':state:' .. state elseif agent ~= '' then index = P .. ':agent:' .. agent end
        local total, ids
        if (state ~= '' and agent ~= '') or repo ~= '' then
          local matched = {}
          for _, id in ipairs(redis.call('ZREVRANGE', index, 0, -1)) do
            local f = redis.call('HMGET', job_key(id), 'agent', 'spec')
            if (agent == '' or f[1] == agent) and (repo == '' or string.find(cjson.decode(f[2]).repo.url, repo, 1, true)) then
              matched[#matched + 1] = id
            end
          end
          total, ids = #matched, {}
          for i = offset + 1, math.min(offset + limit, #matched) do ids[#ids + 1] = matched[i] end
        else
          total, ids = redis.call('ZCARD', index), {}
          if limit > 0 then ids = redis.call('ZREVRANGE', index, offset, offset + limit - 1) end
        end
        local page = { total }
        for _, id in ipairs(ids) do page[#page + 1] = read_job(id) end
        return page
        """;

    // ARGV: P, origin. Returns the count of each state, in the order of QueueStats.
    internal const string Stats = Library + """
        local counts = {}
        for i, state in ipairs({ 'queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled', 'timed_out', 'dead' }) do
          counts[i] = redis.call('ZCARD', P .. ':state:' .. state)
        end
        return counts
        """;

    // ARGV: P, origin, now, id, attempt, then (kind, message, stream) per event; stream is '' for none, else '+' .. stream.
    // Returns 0 when there is no such job.
    internal const string Append = Library + """
        local id, now = ARGV[4], ARGV[3]
        local key = job_key(id)
        if redis.call('EXISTS', key) == 0 then return 0 end
        for i = 6, #ARGV, 3 do
          local stream = nil
          if ARGV[i + 2] ~= '' then stream = string.sub(ARGV[i + 2], 2) end
          add_event(id, key, ARGV[5], now, ARGV[i], ARGV[i + 1], stream)
        end
        return 1
        """;

    // ARGV: P, origin, intake list, raw value, dead-letter entry, dead-letter list. Returns 1, or 0 when someone else took the value.
    internal const string DeadLetter = Library + """
        if redis.call('LREM', ARGV[3], 1, ARGV[4]) == 0 then return 0 end
        redis.call('LPUSH', ARGV[6], ARGV[5])
        redis.call('LTRIM', ARGV[6], 0, MAX_DEAD - 1)
        return 1
        """;

    // ARGV: P, origin, intake list, raw list. Puts raw pushes whose taker may have died or lost its connection back where
    // producers left them, oldest nearest the consuming end. Returns how many.
    internal const string ReturnIntake = Library + """
        local moved = 0
        while redis.call('LMOVE', ARGV[3], ARGV[4], 'LEFT', 'RIGHT') do moved = moved + 1 end
        return moved
        """;
}
