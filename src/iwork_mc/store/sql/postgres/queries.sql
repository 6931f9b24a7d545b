-- migration_lock --
-- Serialises migration runs on one schema, held until the transaction ends.
-- Two keys: a constant for iwork-mc, and the schema (tests use one schema each).
SELECT pg_advisory_xact_lock(1769108419, hashtext(coalesce(current_schema(), '')));

-- create_schema_migrations --
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at_ms bigint NOT NULL
);

-- migration_applied --
SELECT 1 FROM schema_migrations WHERE version = %(version)s;

-- record_migration --
-- The database's clock: migrate() takes no time parameter.
INSERT INTO schema_migrations (version, name, applied_at_ms)
VALUES (%(version)s, %(name)s, (extract(epoch FROM clock_timestamp()) * 1000)::bigint);

-- insert_app --
INSERT INTO apps (
    app_key, name, secret, previous_secret, previous_secret_expires_at_ms, enabled, created_at_ms,
    callback_url, rate_limit, rate_burst
)
VALUES (
    %(app_key)s, %(name)s, %(secret)s, %(previous_secret)s, %(previous_secret_expires_at_ms)s,
    %(enabled)s, %(created_at_ms)s, %(callback_url)s, %(rate_limit)s, %(rate_burst)s
)
ON CONFLICT (app_key) DO NOTHING
RETURNING app_key;

-- set_app_rate --
UPDATE apps SET rate_limit = %(rate_limit)s, rate_burst = %(rate_burst)s
WHERE app_key = %(app_key)s RETURNING *;

-- seed_bucket --
-- An app's first lease finds its bucket full.
INSERT INTO rate_buckets (app_key, tokens, updated_at_ms)
VALUES (%(app_key)s, %(tokens)s, %(now_ms)s)
ON CONFLICT (app_key) DO NOTHING;

-- lock_bucket --
SELECT tokens, updated_at_ms FROM rate_buckets WHERE app_key = %(app_key)s FOR UPDATE;

-- save_bucket --
UPDATE rate_buckets SET tokens = %(tokens)s, updated_at_ms = %(updated_at_ms)s
WHERE app_key = %(app_key)s;

-- writable --
-- Whether the store's tables can be read and this server takes writes now: not a
-- standby, not read-only (a switchover in progress leaves the old primary read-only
-- while it is still reachable).
SELECT NOT (pg_is_in_recovery() OR current_setting('transaction_read_only')::boolean)
    AS writable
FROM (SELECT count(*) FROM apps WHERE false) AS tables_readable;

-- get_app --
SELECT * FROM apps WHERE app_key = %(app_key)s;

-- list_apps --
SELECT * FROM apps ORDER BY created_at_ms, app_key;

-- set_app_enabled --
UPDATE apps SET enabled = %(enabled)s WHERE app_key = %(app_key)s RETURNING *;

-- rotate_secret --
-- The right-hand sides read the row as it was, so the old secret moves aside.
UPDATE apps
SET previous_secret = secret,
    previous_secret_expires_at_ms = %(previous_valid_until_ms)s,
    secret = %(new_secret)s
WHERE app_key = %(app_key)s
RETURNING *;

-- set_callback_url --
UPDATE apps SET callback_url = %(url)s WHERE app_key = %(app_key)s RETURNING *;

-- accept --
-- Message, outbox row (due at %(due_at_ms)s), timeline entries (%(entries)s: a JSON
-- array of {kind, detail}, accepted first, recorded in that order) and the status
-- event (if the app has a callback URL) in one statement, one round trip.
-- A repeat of (app_key, msg_key) inserts nothing and returns no row; a concurrent
-- insert of the same key makes this wait for it, then insert nothing.  With
-- %(check_opt_out)s, an opted-out receiver (this app or every app) also inserts
-- nothing: the caller tells the two apart by looking for the key.
WITH inserted AS (
    INSERT INTO messages (
        app_key, msg_key, fingerprint, request_id, status, accepted_at_ms, updated_at_ms,
        event_time_millis, source, action, mobile_receiver, event_type, json_data, sender,
        resource_id, resource_url, text, template, encoding, segments, urgent, expires_at_ms,
        text_digest, trace_parent
    )
    SELECT
        %(app_key)s, %(msg_key)s, %(fingerprint)s, %(request_id)s, %(status)s, %(now_ms)s,
        %(now_ms)s, %(event_time_millis)s, %(source)s, %(action)s, %(mobile_receiver)s,
        %(event_type)s, %(json_data)s, %(sender)s, %(resource_id)s, %(resource_url)s,
        %(text)s, %(template)s, %(encoding)s, %(segments)s, %(urgent)s, %(expires_at_ms)s,
        %(text_digest)s, %(trace_parent)s
    WHERE NOT (%(check_opt_out)s::boolean AND EXISTS (
        SELECT 1 FROM opt_outs
        WHERE receiver = %(mobile_receiver)s AND app_key IN (%(app_key)s::text, '*')
    ))
    ON CONFLICT (app_key, msg_key) DO NOTHING
    RETURNING id, app_key, msg_key
), queued AS (
    INSERT INTO outbox (message_id, due_at_ms) SELECT id, %(due_at_ms)s FROM inserted
), noted AS (
    INSERT INTO timeline (message_id, at_ms, kind, status, detail)
    SELECT inserted.id, %(now_ms)s, entry.value ->> 'kind', %(status)s, entry.value -> 'detail'
    FROM inserted, jsonb_array_elements(%(entries)s::jsonb) WITH ORDINALITY AS entry (value, n)
    ORDER BY entry.n
), evented AS (
    INSERT INTO status_events (message_id, app_key, msg_key, status, at_ms, url, detail, due_at_ms)
    SELECT inserted.id, inserted.app_key, inserted.msg_key, %(status)s, %(now_ms)s,
        apps.callback_url, %(detail)s::jsonb, %(now_ms)s
    FROM inserted JOIN apps ON apps.app_key = inserted.app_key
    WHERE apps.callback_url IS NOT NULL
)
SELECT id FROM inserted;

-- receiver_lock --
-- Serialises the accepts to one receiver while receiver policies are in force, so
-- two gateways cannot both pass a cap.  Held until the transaction ends; a hash
-- collision only serialises two receivers' accepts.
SELECT pg_advisory_xact_lock(
    1769108421, hashtext(concat_ws(' ', current_schema(), %(receiver)s::text))
);

-- receiver_facts --
-- Opt-out (this app or every app) and the dedupe question for one receiver;
-- a NULL %(dedupe_since_ms)s asks no dedupe question.
SELECT
    EXISTS (
        SELECT 1 FROM opt_outs
        WHERE receiver = %(receiver)s AND app_key IN (%(app_key)s::text, '*')
    ) AS opted_out,
    %(dedupe_since_ms)s::bigint IS NOT NULL AND EXISTS (
        SELECT 1 FROM messages
        WHERE mobile_receiver = %(receiver)s AND text_digest = %(text_digest)s
            AND accepted_at_ms > %(dedupe_since_ms)s::bigint
    ) AS duplicate_text;

-- count_to_receiver --
-- Messages to a receiver accepted after since_ms; NULL app_key / template: any.
SELECT count(*) AS n FROM messages
WHERE mobile_receiver = %(receiver)s AND accepted_at_ms > %(since_ms)s
    AND (%(app_key)s::text IS NULL OR app_key = %(app_key)s::text)
    AND (%(template)s::text IS NULL OR template = %(template)s::text);

-- existing_fingerprint --
SELECT id, fingerprint FROM messages WHERE app_key = %(app_key)s AND msg_key = %(msg_key)s;

-- get_message --
SELECT * FROM messages WHERE app_key = %(app_key)s AND msg_key = %(msg_key)s;

-- get_message_by_id --
SELECT * FROM messages WHERE id = %(message_id)s;

-- timeline --
-- In the order the entries were recorded: writers of one message are serialised
-- by its row lock, while their clocks (at_ms) were read before they waited for it.
SELECT at_ms, kind, status, detail::text AS detail FROM timeline
WHERE message_id = %(message_id)s
ORDER BY id;

-- count_by_status --
-- NULL bounds are no bounds: from is inclusive, until exclusive.
SELECT status, count(*) AS n FROM messages
WHERE (%(accepted_from_ms)s::bigint IS NULL OR accepted_at_ms >= %(accepted_from_ms)s::bigint)
    AND (%(accepted_until_ms)s::bigint IS NULL OR accepted_at_ms < %(accepted_until_ms)s::bigint)
GROUP BY status;

-- count_by_status_for_app --
SELECT status, count(*) AS n FROM messages
WHERE app_key = %(app_key)s
    AND (%(accepted_from_ms)s::bigint IS NULL OR accepted_at_ms >= %(accepted_from_ms)s::bigint)
    AND (%(accepted_until_ms)s::bigint IS NULL OR accepted_at_ms < %(accepted_until_ms)s::bigint)
GROUP BY status;

-- find_messages --
-- Newest first; every NULL filter is "any".
SELECT * FROM messages
WHERE (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
    AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
    AND (%(receiver)s::text IS NULL OR mobile_receiver = %(receiver)s::text)
    AND (%(msg_key)s::text IS NULL OR msg_key = %(msg_key)s::text)
    AND (%(channel)s::text IS NULL OR channel = %(channel)s::text)
    AND (%(accepted_from_ms)s::bigint IS NULL OR accepted_at_ms >= %(accepted_from_ms)s::bigint)
    AND (%(accepted_until_ms)s::bigint IS NULL OR accepted_at_ms < %(accepted_until_ms)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s;

-- find_messages_for_app --
-- One app's messages, newest first (served by messages_app).
SELECT * FROM messages
WHERE app_key = %(app_key)s
    AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
    AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
    AND (%(receiver)s::text IS NULL OR mobile_receiver = %(receiver)s::text)
    AND (%(msg_key)s::text IS NULL OR msg_key = %(msg_key)s::text)
    AND (%(channel)s::text IS NULL OR channel = %(channel)s::text)
    AND (%(accepted_from_ms)s::bigint IS NULL OR accepted_at_ms >= %(accepted_from_ms)s::bigint)
    AND (%(accepted_until_ms)s::bigint IS NULL OR accepted_at_ms < %(accepted_until_ms)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s;

-- requeue --
-- An operator's retry of a failed or expired message (%(sources)s) not redacted
-- (nothing would be left to send): queued again,
-- due now, on the first route step, with a new validity; the requeued entry keeps
-- the previous status and error.  No outbox row exists for a final message, so
-- locking the message row alone cannot deadlock with claims.  Returns 0 or 1.
WITH previous AS (
    SELECT id, status, last_error FROM messages
    WHERE id = %(message_id)s AND status = ANY(%(sources)s) AND redacted_at_ms IS NULL
    FOR NO KEY UPDATE
), moved AS (
    UPDATE messages m
    SET status = 'queued',
        updated_at_ms = %(now_ms)s,
        expires_at_ms = %(expires_at_ms)s,
        route_step = 0,
        step_attempts = 0,
        last_error = NULL
    FROM previous
    WHERE m.id = previous.id
    RETURNING m.id, m.app_key, m.msg_key, jsonb_build_object(
        'by', %(by)s::text,
        'previous_status', previous.status,
        'previous_error', previous.last_error
    ) AS detail
), scheduled AS (
    INSERT INTO outbox (message_id, due_at_ms)
    SELECT id, %(due_at_ms)s FROM moved
    ON CONFLICT (message_id) DO UPDATE
    SET due_at_ms = excluded.due_at_ms, lease_owner = NULL, lease_expires_at_ms = NULL
), noted AS (
    INSERT INTO timeline (message_id, at_ms, kind, status, detail)
    SELECT id, %(now_ms)s, 'requeued', 'queued', detail FROM moved
), evented AS (
    INSERT INTO status_events (message_id, app_key, msg_key, status, at_ms, url, detail, due_at_ms)
    SELECT moved.id, moved.app_key, moved.msg_key, 'queued', %(now_ms)s, apps.callback_url,
        moved.detail, %(now_ms)s
    FROM moved JOIN apps ON apps.app_key = moved.app_key
    WHERE apps.callback_url IS NOT NULL
)
SELECT count(*) AS moved FROM moved;

-- note --
-- The entry carries the message's current status; no row when the message does not exist.
INSERT INTO timeline (message_id, at_ms, kind, status, detail)
SELECT id, %(now_ms)s, %(kind)s, status, %(detail)s::jsonb FROM messages
WHERE id = %(message_id)s
RETURNING id;

-- claim_due --
-- SKIP LOCKED: rows another worker is claiming right now are left to it, so two
-- workers never lease one message.  Locks are taken outbox row first, then the
-- message, the same order as transition, so the two cannot deadlock.
WITH due AS (
    SELECT message_id, lease_owner, claimable_at_ms FROM outbox
    WHERE claimable_at_ms <= %(now_ms)s
    ORDER BY claimable_at_ms, message_id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE outbox o
    SET lease_owner = %(worker_id)s, lease_expires_at_ms = %(lease_expires_at_ms)s
    FROM due
    WHERE o.message_id = due.message_id
    RETURNING o.message_id, due.lease_owner AS previous_owner, due.claimable_at_ms
), claimed AS (
    UPDATE messages m
    SET status = 'sending',
        attempts = m.attempts + 1,
        step_attempts = m.step_attempts + 1,
        updated_at_ms = %(now_ms)s
    FROM leased
    WHERE m.id = leased.message_id
    RETURNING m.*, leased.previous_owner, leased.claimable_at_ms
), noted AS (
    INSERT INTO timeline (message_id, at_ms, kind, status, detail)
    SELECT id, %(now_ms)s, 'claimed', 'sending', jsonb_strip_nulls(jsonb_build_object(
        'worker_id', %(worker_id)s::text,
        'attempt', attempts,
        'reclaimed_from', previous_owner
    ))
    FROM claimed
)
SELECT claimed.*, EXISTS (
    SELECT 1 FROM opt_outs
    WHERE opt_outs.receiver = claimed.mobile_receiver AND opt_outs.app_key IN (claimed.app_key, '*')
) AS receiver_opted_out
FROM claimed ORDER BY claimable_at_ms, id;

-- transition --
-- One statement: lock the outbox row (if any) first, as claim_due does, then move
-- the message only from a status TRANSITIONS allows (%(sources)s) and, given a
-- worker, only while that worker holds the lease.  NULL channel, channel_ref,
-- error or route_step keep the old value; a route_step restarts step_attempts.
-- attempt_not_made (0 or 1) takes back the attempt the claim counted.
-- Queued reschedules the outbox row, sending keeps it, anything else releases
-- it.  Every status but sending queues a status event if the app has a callback
-- URL.  Returns the number of messages moved (0 or 1).
WITH lease AS (
    SELECT lease_owner FROM outbox WHERE message_id = %(message_id)s FOR UPDATE
), moved AS (
    UPDATE messages
    SET status = %(status)s,
        updated_at_ms = %(now_ms)s,
        channel = coalesce(%(channel)s, channel),
        channel_ref = coalesce(%(channel_ref)s, channel_ref),
        last_error = coalesce(%(error)s, last_error),
        route_step = coalesce(%(route_step)s::integer, route_step),
        -- %(attempt_not_made)s (0 or 1) gives back what claim_due counted.
        attempts = attempts - %(attempt_not_made)s::integer,
        step_attempts = CASE
            WHEN %(route_step)s::integer IS NULL
            THEN step_attempts - %(attempt_not_made)s::integer ELSE 0
        END
    WHERE id = %(message_id)s
        AND status = ANY(%(sources)s)
        AND (
            SELECT coalesce(bool_or(lease_owner = %(worker_id)s::text), %(worker_id)s::text IS NULL)
            FROM lease
        )
    RETURNING id, status, app_key, msg_key
), scheduled AS (
    INSERT INTO outbox (message_id, due_at_ms)
    SELECT id, %(due_at_ms)s FROM moved WHERE status = 'queued'
    ON CONFLICT (message_id) DO UPDATE
    SET due_at_ms = excluded.due_at_ms, lease_owner = NULL, lease_expires_at_ms = NULL
), released AS (
    DELETE FROM outbox
    WHERE message_id IN (SELECT id FROM moved WHERE status NOT IN ('queued', 'sending'))
), noted AS (
    INSERT INTO timeline (message_id, at_ms, kind, status, detail)
    SELECT id, %(now_ms)s, %(kind)s, status, %(detail)s::jsonb FROM moved
), evented AS (
    INSERT INTO status_events (message_id, app_key, msg_key, status, at_ms, url, detail, due_at_ms)
    SELECT moved.id, moved.app_key, moved.msg_key, moved.status, %(now_ms)s, apps.callback_url,
        %(detail)s::jsonb, %(now_ms)s
    FROM moved JOIN apps ON apps.app_key = moved.app_key
    WHERE apps.callback_url IS NOT NULL AND moved.status <> 'sending'
)
SELECT count(*) AS moved FROM moved;

-- claim_status_events --
-- Like claim_due: SKIP LOCKED leaves events another sender is claiming to it.
WITH due AS (
    SELECT id, claimable_at_ms FROM status_events
    WHERE claimable_at_ms <= %(now_ms)s AND delivered_at_ms IS NULL AND given_up_at_ms IS NULL
    ORDER BY claimable_at_ms, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE status_events e
    SET lease_owner = %(worker_id)s,
        lease_expires_at_ms = %(lease_expires_at_ms)s,
        attempts = e.attempts + 1
    FROM due
    WHERE e.id = due.id
    RETURNING e.*, due.claimable_at_ms AS claimed_at_due_ms
)
SELECT id, message_id, app_key, msg_key, status, at_ms, url, detail::text AS detail, attempts
FROM leased
ORDER BY claimed_at_due_ms, id;

-- status_event_done --
-- Only while %(worker_id)s holds the lease; no row otherwise.
UPDATE status_events
SET delivered_at_ms = %(now_ms)s, lease_owner = NULL, lease_expires_at_ms = NULL
WHERE id = %(event_id)s AND lease_owner = %(worker_id)s
    AND delivered_at_ms IS NULL AND given_up_at_ms IS NULL
RETURNING id, message_id, attempts;

-- status_event_failed --
-- Due again at retry_at_ms, or given up (NULL retry_at_ms); only while
-- %(worker_id)s holds the lease.
UPDATE status_events
SET lease_owner = NULL,
    lease_expires_at_ms = NULL,
    last_error = %(error)s,
    due_at_ms = coalesce(%(retry_at_ms)s::bigint, due_at_ms),
    given_up_at_ms = CASE WHEN %(retry_at_ms)s::bigint IS NULL THEN %(now_ms)s::bigint END
WHERE id = %(event_id)s AND lease_owner = %(worker_id)s
    AND delivered_at_ms IS NULL AND given_up_at_ms IS NULL
RETURNING id, message_id, attempts;

-- insert_template --
-- No row when the name or the selection key (app, source, action, event_type) is taken.
INSERT INTO templates (
    name, app_key, source, action, event_type, body, urgent, limits, created_at_ms,
    updated_at_ms
)
VALUES (
    %(name)s, %(app_key)s, %(source)s, %(action)s, %(event_type)s, %(body)s, %(urgent)s,
    %(limits)s, %(created_at_ms)s, %(updated_at_ms)s
)
ON CONFLICT DO NOTHING
RETURNING name;

-- update_template --
-- created_at_ms is kept; a taken selection key fails on the unique constraint.
UPDATE templates
SET app_key = %(app_key)s, source = %(source)s, action = %(action)s,
    event_type = %(event_type)s, body = %(body)s, urgent = %(urgent)s, limits = %(limits)s,
    updated_at_ms = %(updated_at_ms)s
WHERE name = %(name)s
RETURNING name;

-- delete_template --
DELETE FROM templates WHERE name = %(name)s RETURNING name;

-- get_template --
SELECT * FROM templates WHERE name = %(name)s;

-- list_templates --
SELECT * FROM templates ORDER BY name;

-- add_opt_out --
INSERT INTO opt_outs (app_key, receiver, reason, created_at_ms)
VALUES (%(app_key)s, %(receiver)s, %(reason)s, %(created_at_ms)s)
ON CONFLICT DO NOTHING
RETURNING app_key;

-- remove_opt_out --
DELETE FROM opt_outs WHERE app_key = %(app_key)s AND receiver = %(receiver)s RETURNING app_key;

-- list_opt_outs --
-- Newest first; with app_key, that app's and the every-app ('*') ones.
SELECT * FROM opt_outs
WHERE %(app_key)s::text IS NULL OR app_key IN (%(app_key)s::text, '*')
ORDER BY created_at_ms DESC, app_key, receiver;

-- is_opted_out --
SELECT 1 AS found FROM opt_outs
WHERE receiver = %(receiver)s AND app_key IN (%(app_key)s::text, '*');

-- add_segments --
-- Parts 1..total of an attempt (only those in %(parts)s unless it is NULL: a resend of
-- the parts in doubt), pending; nothing if the attempt has segments already
-- (ON CONFLICT: two racing calls insert one set).  Returns a row iff the message exists.
WITH message AS (
    SELECT id FROM messages WHERE id = %(message_id)s
), inserted AS (
    INSERT INTO segments (message_id, attempt, part, total, channel, state, updated_at_ms)
    SELECT id, %(attempt)s, part, %(total)s, %(channel)s, 'pending', %(now_ms)s
    FROM message, generate_series(1, %(total)s::integer) AS part
    WHERE (%(parts)s::integer[] IS NULL OR part = ANY(%(parts)s::integer[]))
        AND NOT EXISTS (
        SELECT 1 FROM segments WHERE message_id = %(message_id)s AND attempt = %(attempt)s
    )
    ON CONFLICT DO NOTHING
)
SELECT id FROM message;

-- segments --
SELECT * FROM segments WHERE message_id = %(message_id)s ORDER BY attempt, part;

-- segment --
SELECT * FROM segments
WHERE message_id = %(message_id)s AND attempt = %(attempt)s AND part = %(part)s;

-- receipt_lock --
-- Serialises everything that decides whether a receipt for (channel, carrier_id)
-- matches a segment: apply_receipt (match, or keep as unmatched) and
-- segment_submitted (name the segment, take what was kept).  Without it a receipt
-- and the submit_sm_resp naming its segment could each miss the other.  Held until
-- the transaction ends; a hash collision only serialises two unrelated receipts.
SELECT pg_advisory_xact_lock(
    1769108420,
    hashtext(concat_ws(' ', current_schema(), %(channel)s::text, %(carrier_id)s::text))
);

-- lock_message --
-- Serialises aggregation per message: whoever locks second sees the first's segment
-- change (read committed takes a new snapshot per statement).  NO KEY: inserts that
-- only reference the message (timeline entries, segments) are not blocked.
SELECT status FROM messages WHERE id = %(message_id)s FOR NO KEY UPDATE;

-- submit_segment --
-- Only a pending segment takes a carrier id; no row otherwise.
UPDATE segments
SET carrier_id = %(carrier_id)s, state = 'submitted', updated_at_ms = %(now_ms)s
WHERE message_id = %(message_id)s AND attempt = %(attempt)s AND part = %(part)s
    AND state = 'pending'
RETURNING *;

-- release_carrier_id --
-- SMSCs reuse their ids after a while: the newest segment takes the id, the old
-- segment keeps its state but can no longer be named by a receipt.
UPDATE segments SET carrier_id = NULL
WHERE channel = %(channel)s AND carrier_id = %(carrier_id)s
    AND NOT (message_id = %(message_id)s AND attempt = %(attempt)s AND part = %(part)s);

-- refuse_segment --
-- The carrier answered with an error: this part was never accepted, so it is not in doubt.
UPDATE segments
SET state = 'refused', error = %(error)s, updated_at_ms = %(now_ms)s
WHERE message_id = %(message_id)s AND attempt = %(attempt)s AND part = %(part)s
    AND state = 'pending';

-- segment_by_carrier --
-- With the number its message went to, for a receipt that names one.
SELECT segments.*, messages.mobile_receiver
FROM segments JOIN messages ON messages.id = segments.message_id
WHERE segments.channel = %(channel)s AND segments.carrier_id = %(carrier_id)s;

-- set_segment_state --
UPDATE segments
SET state = %(state)s, error = %(error)s, updated_at_ms = %(now_ms)s
WHERE message_id = %(message_id)s AND attempt = %(attempt)s AND part = %(part)s;

-- insert_unmatched_receipt --
INSERT INTO unmatched_receipts (
    channel, carrier_id, state, error, received_at_ms, detail, destination
)
VALUES (
    %(channel)s, %(carrier_id)s, %(state)s, %(error)s, %(now_ms)s, %(detail)s::jsonb,
    %(destination)s
);

-- kept_receipts --
-- The receipts kept for a carrier id, in arrival order.
SELECT id, channel, carrier_id, state, error, received_at_ms, detail::text AS detail, destination
FROM unmatched_receipts
WHERE channel = %(channel)s AND carrier_id = %(carrier_id)s
ORDER BY received_at_ms, id;

-- drop_kept_receipt --
DELETE FROM unmatched_receipts WHERE id = %(id)s;

-- count_unmatched_receipts --
SELECT count(*) AS n FROM unmatched_receipts WHERE channel = %(channel)s;

-- overdue_submissions --
-- Submitted messages whose validity ended before %(before_ms)s, the longest overdue first.
SELECT id FROM messages
WHERE status = 'submitted' AND expires_at_ms < %(before_ms)s
ORDER BY expires_at_ms, id
LIMIT %(limit)s;

-- count_by_status_and_channel --
-- For /metrics: every message by status and by the channel it last used ('' before one).
SELECT status, coalesce(channel, '') AS channel, count(*) AS n FROM messages
GROUP BY status, coalesce(channel, '');

-- due_queue --
-- For /metrics: outbox rows due now and not leased, and the oldest one's due time.
SELECT count(*) AS n, min(due_at_ms) AS oldest_due_at_ms FROM outbox
WHERE lease_owner IS NULL AND due_at_ms <= %(now_ms)s;

-- redact_candidates --
-- Ended messages (%(final)s) that ended before %(ended_before_ms)s and still hold
-- personal data, the longest ended first (served by messages_ended).  Rows another
-- worker's sweep is redacting are skipped, not waited for.
SELECT id, mobile_receiver FROM messages
WHERE status = ANY(%(final)s)
    AND updated_at_ms < %(ended_before_ms)s
    AND redacted_at_ms IS NULL
ORDER BY updated_at_ms, id
LIMIT %(limit)s
FOR NO KEY UPDATE SKIP LOCKED;

-- redact_message --
-- updated_at_ms is kept: it says when the message ended, which deletion counts from.
WITH redacted AS (
    UPDATE messages
    SET mobile_receiver = %(receiver)s, json_data = %(json_data)s, text = '', text_digest = '',
        redacted_at_ms = %(now_ms)s
    WHERE id = %(message_id)s AND redacted_at_ms IS NULL
    RETURNING id, status
)
INSERT INTO timeline (message_id, at_ms, kind, status, detail)
SELECT id, %(now_ms)s, %(kind)s, status, %(detail)s::jsonb FROM redacted
RETURNING message_id;

-- delete_ended --
-- Up to %(limit)s ended messages (%(final)s) matching every non-NULL filter, the
-- longest ended first; timeline, segments, outbox and status events go with them
-- (ON DELETE CASCADE).  Rows locked by another transaction are left for later.
DELETE FROM messages WHERE id IN (
    SELECT id FROM messages
    WHERE status = ANY(%(final)s)
        AND (%(ended_before_ms)s::bigint IS NULL OR updated_at_ms < %(ended_before_ms)s::bigint)
        AND (%(app_key)s::text IS NULL OR app_key = %(app_key)s::text)
        AND (%(msg_key)s::text IS NULL OR msg_key = %(msg_key)s::text)
    ORDER BY updated_at_ms, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id;

-- drop_unmatched_receipts --
-- The oldest kept receipts, up to %(limit)s (they hold a handset's number).
DELETE FROM unmatched_receipts WHERE id IN (
    SELECT id FROM unmatched_receipts
    WHERE received_at_ms < %(received_before_ms)s
    ORDER BY received_at_ms, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id;

-- count_ended --
-- What delete_ended would take (ended) and keep because it has not ended (in_flight).
SELECT
    count(*) FILTER (WHERE status = ANY(%(final)s)) AS ended,
    count(*) FILTER (WHERE NOT status = ANY(%(final)s)) AS in_flight
FROM messages
WHERE (%(ended_before_ms)s::bigint IS NULL OR updated_at_ms < %(ended_before_ms)s::bigint)
    AND (%(app_key)s::text IS NULL OR app_key = %(app_key)s::text)
    AND (%(msg_key)s::text IS NULL OR msg_key = %(msg_key)s::text);

-- insert_audit --
INSERT INTO audit_log (at_ms, actor, action, target, detail)
VALUES (%(at_ms)s, %(actor)s, %(action)s, %(target)s, %(detail)s::jsonb);

-- list_audit --
-- Newest first; every NULL filter is "any".
SELECT id, at_ms, actor, action, target, detail::text AS detail FROM audit_log
WHERE (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
    AND (%(since_ms)s::bigint IS NULL OR at_ms >= %(since_ms)s::bigint)
    AND (%(actor)s::text IS NULL OR actor = %(actor)s::text)
    AND (%(action)s::text IS NULL OR action = %(action)s::text)
ORDER BY id DESC
LIMIT %(limit)s;

-- awaiting_receipts --
-- A channel's submitted segments still waiting for their receipt, of messages still
-- submitted, after the cursor (%(after_ms)s, %(after_id)s, %(after_attempt)s) in that order:
-- a receipt poller pages through them round and round.
SELECT s.message_id, s.attempt, s.carrier_id, s.updated_at_ms, m.mobile_receiver
FROM segments AS s JOIN messages AS m ON m.id = s.message_id
WHERE s.channel = %(channel)s AND s.state IN ('submitted', 'enroute')
    AND s.carrier_id IS NOT NULL AND m.status = 'submitted'
    AND (s.updated_at_ms, s.message_id, s.attempt) > (%(after_ms)s, %(after_id)s, %(after_attempt)s)
ORDER BY s.updated_at_ms, s.message_id, s.attempt
LIMIT %(limit)s;

-- insert_operator --
INSERT INTO operators (name, password_hash, created_at_ms, failed_sign_ins, locked_until_ms,
                       last_sign_in_ms)
VALUES (%(name)s, %(password_hash)s, %(created_at_ms)s, %(failed_sign_ins)s,
        %(locked_until_ms)s, %(last_sign_in_ms)s)
ON CONFLICT (name) DO NOTHING
RETURNING name;

-- get_operator --
SELECT * FROM operators WHERE name = %(name)s;

-- list_operators --
SELECT * FROM operators ORDER BY name;

-- sign_in_failed --
-- One more failure in a row; the one that reaches %(max_failures)s locks the account
-- until now + %(lockout_ms)s and starts the count again.  One UPDATE: concurrent
-- failures from several processes each count.
UPDATE operators SET
    failed_sign_ins = CASE WHEN failed_sign_ins + 1 >= %(max_failures)s THEN 0
                           ELSE failed_sign_ins + 1 END,
    locked_until_ms = CASE WHEN failed_sign_ins + 1 >= %(max_failures)s
                           THEN %(now_ms)s::bigint + %(lockout_ms)s::bigint
                           ELSE locked_until_ms END
WHERE name = %(name)s
RETURNING *;

-- sign_in_succeeded --
UPDATE operators SET failed_sign_ins = 0, locked_until_ms = 0, last_sign_in_ms = %(now_ms)s
WHERE name = %(name)s;

-- activity --
-- Per bucket of %(bucket_ms)s from %(since_ms)s: messages accepted, and messages
-- (accepted since then) delivered, by the instant of their last change.
SELECT bucket, sum(accepted)::bigint AS accepted, sum(delivered)::bigint AS delivered FROM (
    SELECT (accepted_at_ms - %(since_ms)s::bigint) / %(bucket_ms)s::bigint AS bucket,
           1 AS accepted, 0 AS delivered
    FROM messages WHERE accepted_at_ms >= %(since_ms)s::bigint
    UNION ALL
    SELECT (updated_at_ms - %(since_ms)s::bigint) / %(bucket_ms)s::bigint, 0, 1
    FROM messages WHERE accepted_at_ms >= %(since_ms)s::bigint AND status = 'delivered'
) AS counted
GROUP BY bucket
ORDER BY bucket;

-- open_channel --
-- A worker's breaker opened: every worker skips the channel until %(open_until_ms)s.
-- The later opening wins.
INSERT INTO channel_breakers (channel, opened_at_ms, open_until_ms, opened_by)
VALUES (%(channel)s, %(opened_at_ms)s, %(open_until_ms)s, %(opened_by)s)
ON CONFLICT (channel) DO UPDATE SET
    opened_at_ms = excluded.opened_at_ms,
    open_until_ms = excluded.open_until_ms,
    opened_by = excluded.opened_by
WHERE excluded.opened_at_ms >= channel_breakers.opened_at_ms
RETURNING channel;

-- close_channel --
-- A worker's probes closed the breaker: an opening from before then is over.
DELETE FROM channel_breakers WHERE channel = %(channel)s AND opened_at_ms <= %(closed_at_ms)s
RETURNING channel;

-- open_channels --
SELECT channel, opened_at_ms, open_until_ms, opened_by FROM channel_breakers
WHERE open_until_ms > %(now_ms)s ORDER BY channel;
