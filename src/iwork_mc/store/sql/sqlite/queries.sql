-- create_schema_migrations --
-- The migration runner's ledger; created before the first migration runs.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at_ms INTEGER NOT NULL
) STRICT;

-- migration_applied --
SELECT 1 FROM schema_migrations WHERE version = :version;

-- record_migration --
-- The database's clock: migrate() takes no time parameter.
INSERT INTO schema_migrations (version, name, applied_at_ms)
VALUES (:version, :name, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));

-- insert_app --
INSERT INTO apps (
    app_key, name, secret, previous_secret, previous_secret_expires_at_ms, enabled, created_at_ms
)
VALUES (
    :app_key, :name, :secret, :previous_secret, :previous_secret_expires_at_ms, :enabled,
    :created_at_ms
)
ON CONFLICT (app_key) DO NOTHING
RETURNING app_key;

-- get_app --
SELECT * FROM apps WHERE app_key = :app_key;

-- list_apps --
SELECT * FROM apps ORDER BY created_at_ms, app_key;

-- set_app_enabled --
UPDATE apps SET enabled = :enabled WHERE app_key = :app_key RETURNING *;

-- rotate_secret --
-- The right-hand sides read the row as it was, so the old secret moves aside.
UPDATE apps
SET previous_secret = secret,
    previous_secret_expires_at_ms = :previous_valid_until_ms,
    secret = :new_secret
WHERE app_key = :app_key
RETURNING *;

-- insert_message --
-- A repeat of (app_key, msg_key) inserts nothing and returns no row.
INSERT INTO messages (
    app_key, msg_key, fingerprint, request_id, status, accepted_at_ms, updated_at_ms,
    event_time_millis, source, action, mobile_receiver, event_type, json_data, sender,
    resource_id, resource_url
)
VALUES (
    :app_key, :msg_key, :fingerprint, :request_id, :status, :now_ms, :now_ms,
    :event_time_millis, :source, :action, :mobile_receiver, :event_type, :json_data, :sender,
    :resource_id, :resource_url
)
ON CONFLICT (app_key, msg_key) DO NOTHING
RETURNING id;

-- insert_outbox --
INSERT INTO outbox (message_id, due_at_ms) VALUES (:message_id, :now_ms);

-- insert_timeline --
INSERT INTO timeline (message_id, at_ms, kind, status, detail)
VALUES (:message_id, :now_ms, :kind, :status, :detail);

-- existing_fingerprint --
SELECT id, fingerprint FROM messages WHERE app_key = :app_key AND msg_key = :msg_key;

-- get_message --
SELECT * FROM messages WHERE app_key = :app_key AND msg_key = :msg_key;

-- get_message_by_id --
SELECT * FROM messages WHERE id = :message_id;

-- timeline --
-- In the order the entries were recorded: writers of one message are serialised
-- by its row lock, while their clocks (at_ms) were read before they waited for it.
SELECT at_ms, kind, status, detail FROM timeline
WHERE message_id = :message_id
ORDER BY id;

-- count_by_status --
SELECT status, count(*) AS n FROM messages GROUP BY status;

-- count_by_status_for_app --
SELECT status, count(*) AS n FROM messages WHERE app_key = :app_key GROUP BY status;

-- note --
-- The entry carries the message's current status; no row when the message does not exist.
INSERT INTO timeline (message_id, at_ms, kind, status, detail)
SELECT id, :now_ms, :kind, status, :detail FROM messages WHERE id = :message_id
RETURNING id;

-- claim_candidates --
-- Due rows and rows whose lease ran out, in claim order (served by outbox_claimable).
SELECT message_id, lease_owner FROM outbox
WHERE claimable_at_ms <= :now_ms
ORDER BY claimable_at_ms, message_id
LIMIT :limit;

-- lease_outbox --
UPDATE outbox
SET lease_owner = :worker_id, lease_expires_at_ms = :lease_expires_at_ms
WHERE message_id = :message_id;

-- claim_message --
UPDATE messages
SET status = 'sending', attempts = attempts + 1, updated_at_ms = :now_ms
WHERE id = :message_id
RETURNING *;

-- lease_held --
SELECT 1 FROM outbox WHERE message_id = :message_id AND lease_owner = :worker_id;

-- transition_message --
-- Refused (no row) unless the current status may move to :status; :sources is a
-- JSON array of those statuses.  NULL channel, channel_ref or error keep the old value.
UPDATE messages
SET status = :status,
    updated_at_ms = :now_ms,
    channel = coalesce(:channel, channel),
    channel_ref = coalesce(:channel_ref, channel_ref),
    last_error = coalesce(:error, last_error)
WHERE id = :message_id AND status IN (SELECT value FROM json_each(:sources))
RETURNING id;

-- schedule_outbox --
-- Back to queued: due again at :due_at_ms, and whatever lease there was is gone.
INSERT INTO outbox (message_id, due_at_ms) VALUES (:message_id, :due_at_ms)
ON CONFLICT (message_id) DO UPDATE
SET due_at_ms = excluded.due_at_ms, lease_owner = NULL, lease_expires_at_ms = NULL;

-- release_outbox --
DELETE FROM outbox WHERE message_id = :message_id;

-- insert_segments --
-- Parts 1..:total of an attempt, pending; nothing if the attempt has segments already.
-- (WHERE on the SELECT: SQLite would otherwise read ON CONFLICT as a join's ON.)
WITH RECURSIVE parts (part) AS (
    SELECT 1 UNION ALL SELECT part + 1 FROM parts WHERE part < :total
)
INSERT INTO segments (message_id, attempt, part, total, channel, state, updated_at_ms)
SELECT :message_id, :attempt, part, :total, :channel, 'pending', :now_ms FROM parts
WHERE NOT EXISTS (
    SELECT 1 FROM segments WHERE message_id = :message_id AND attempt = :attempt
)
ON CONFLICT DO NOTHING;

-- segments --
SELECT * FROM segments WHERE message_id = :message_id ORDER BY attempt, part;

-- segment --
SELECT * FROM segments WHERE message_id = :message_id AND attempt = :attempt AND part = :part;

-- submit_segment --
-- Only a pending segment takes a carrier id; no row otherwise.
UPDATE segments
SET carrier_id = :carrier_id, state = 'submitted', updated_at_ms = :now_ms
WHERE message_id = :message_id AND attempt = :attempt AND part = :part AND state = 'pending'
RETURNING *;

-- release_carrier_id --
-- SMSCs reuse their ids after a while: the newest segment takes the id, the old
-- segment keeps its state but can no longer be named by a receipt.
UPDATE segments SET carrier_id = NULL
WHERE channel = :channel AND carrier_id = :carrier_id
    AND NOT (message_id = :message_id AND attempt = :attempt AND part = :part);

-- refuse_segment --
-- The carrier answered with an error: this part was never accepted, so it is not in doubt.
UPDATE segments
SET state = 'refused', error = :error, updated_at_ms = :now_ms
WHERE message_id = :message_id AND attempt = :attempt AND part = :part AND state = 'pending';

-- segment_by_carrier --
SELECT * FROM segments WHERE channel = :channel AND carrier_id = :carrier_id;

-- set_segment_state --
UPDATE segments
SET state = :state, error = :error, updated_at_ms = :now_ms
WHERE message_id = :message_id AND attempt = :attempt AND part = :part;

-- latest_attempt_segments --
-- The segments of the message's latest attempt, by part.
SELECT * FROM segments
WHERE message_id = :message_id
    AND attempt = (SELECT max(attempt) FROM segments WHERE message_id = :message_id)
ORDER BY part;

-- insert_unmatched_receipt --
INSERT INTO unmatched_receipts (channel, carrier_id, state, error, received_at_ms, detail)
VALUES (:channel, :carrier_id, :state, :error, :now_ms, :detail);

-- take_unmatched_receipts --
-- Deletes and returns the receipts kept for a carrier id (in no particular order).
DELETE FROM unmatched_receipts WHERE channel = :channel AND carrier_id = :carrier_id
RETURNING *;

-- count_unmatched_receipts --
SELECT count(*) AS n FROM unmatched_receipts WHERE channel = :channel;
