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
    app_key, name, secret, previous_secret, previous_secret_expires_at_ms, enabled, created_at_ms
)
VALUES (
    %(app_key)s, %(name)s, %(secret)s, %(previous_secret)s, %(previous_secret_expires_at_ms)s,
    %(enabled)s, %(created_at_ms)s
)
ON CONFLICT (app_key) DO NOTHING
RETURNING app_key;

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

-- accept --
-- Message, outbox row and first timeline entry in one statement (one round trip).
-- A repeat of (app_key, msg_key) inserts nothing and returns no row; a concurrent
-- insert of the same key makes this wait for it, then insert nothing.
WITH inserted AS (
    INSERT INTO messages (
        app_key, msg_key, fingerprint, request_id, status, accepted_at_ms, updated_at_ms,
        event_time_millis, source, action, mobile_receiver, event_type, json_data, sender,
        resource_id, resource_url
    )
    VALUES (
        %(app_key)s, %(msg_key)s, %(fingerprint)s, %(request_id)s, %(status)s, %(now_ms)s,
        %(now_ms)s, %(event_time_millis)s, %(source)s, %(action)s, %(mobile_receiver)s,
        %(event_type)s, %(json_data)s, %(sender)s, %(resource_id)s, %(resource_url)s
    )
    ON CONFLICT (app_key, msg_key) DO NOTHING
    RETURNING id
), queued AS (
    INSERT INTO outbox (message_id, due_at_ms) SELECT id, %(now_ms)s FROM inserted
), noted AS (
    INSERT INTO timeline (message_id, at_ms, kind, status, detail)
    SELECT id, %(now_ms)s, %(kind)s, %(status)s, %(detail)s::jsonb FROM inserted
)
SELECT id FROM inserted;

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
SELECT status, count(*) AS n FROM messages GROUP BY status;

-- count_by_status_for_app --
SELECT status, count(*) AS n FROM messages WHERE app_key = %(app_key)s GROUP BY status;

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
    SET status = 'sending', attempts = m.attempts + 1, updated_at_ms = %(now_ms)s
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
SELECT * FROM claimed ORDER BY claimable_at_ms, id;

-- transition --
-- One statement: lock the outbox row (if any) first, as claim_due does, then move
-- the message only from a status TRANSITIONS allows (%(sources)s) and, given a
-- worker, only while that worker holds the lease.  NULL channel, channel_ref or
-- error keep the old value.  Queued reschedules the outbox row, sending keeps it,
-- anything else releases it.  Returns the number of messages moved (0 or 1).
WITH lease AS (
    SELECT lease_owner FROM outbox WHERE message_id = %(message_id)s FOR UPDATE
), moved AS (
    UPDATE messages
    SET status = %(status)s,
        updated_at_ms = %(now_ms)s,
        channel = coalesce(%(channel)s, channel),
        channel_ref = coalesce(%(channel_ref)s, channel_ref),
        last_error = coalesce(%(error)s, last_error)
    WHERE id = %(message_id)s
        AND status = ANY(%(sources)s)
        AND (
            SELECT coalesce(bool_or(lease_owner = %(worker_id)s::text), %(worker_id)s::text IS NULL)
            FROM lease
        )
    RETURNING id, status
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
)
SELECT count(*) AS moved FROM moved;

-- add_segments --
-- Parts 1..total of an attempt, pending; nothing if the attempt has segments already
-- (ON CONFLICT: two racing calls insert one set).  Returns a row iff the message exists.
WITH message AS (
    SELECT id FROM messages WHERE id = %(message_id)s
), inserted AS (
    INSERT INTO segments (message_id, attempt, part, total, channel, state, updated_at_ms)
    SELECT id, %(attempt)s, part, %(total)s, %(channel)s, 'pending', %(now_ms)s
    FROM message, generate_series(1, %(total)s::integer) AS part
    WHERE NOT EXISTS (
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
SELECT * FROM segments WHERE channel = %(channel)s AND carrier_id = %(carrier_id)s;

-- set_segment_state --
UPDATE segments
SET state = %(state)s, error = %(error)s, updated_at_ms = %(now_ms)s
WHERE message_id = %(message_id)s AND attempt = %(attempt)s AND part = %(part)s;

-- latest_attempt_segments --
-- The segments of the message's latest attempt, by part.
SELECT * FROM segments
WHERE message_id = %(message_id)s
    AND attempt = (SELECT max(attempt) FROM segments WHERE message_id = %(message_id)s)
ORDER BY part;

-- insert_unmatched_receipt --
INSERT INTO unmatched_receipts (channel, carrier_id, state, error, received_at_ms, detail)
VALUES (
    %(channel)s, %(carrier_id)s, %(state)s, %(error)s, %(now_ms)s, %(detail)s::jsonb
);

-- take_unmatched_receipts --
-- Deletes and returns the receipts kept for a carrier id, in arrival order.
WITH taken AS (
    DELETE FROM unmatched_receipts
    WHERE channel = %(channel)s AND carrier_id = %(carrier_id)s
    RETURNING *
)
SELECT id, channel, carrier_id, state, error, received_at_ms, detail::text AS detail
FROM taken
ORDER BY received_at_ms, id;

-- count_unmatched_receipts --
SELECT count(*) AS n FROM unmatched_receipts WHERE channel = %(channel)s;
