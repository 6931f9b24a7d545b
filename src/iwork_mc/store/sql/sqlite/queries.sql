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
    app_key, name, secret, previous_secret, previous_secret_expires_at_ms, enabled, created_at_ms,
    callback_url, rate_limit, rate_burst
)
VALUES (
    :app_key, :name, :secret, :previous_secret, :previous_secret_expires_at_ms, :enabled,
    :created_at_ms, :callback_url, :rate_limit, :rate_burst
)
ON CONFLICT (app_key) DO NOTHING
RETURNING app_key;

-- set_app_rate --
UPDATE apps SET rate_limit = :rate_limit, rate_burst = :rate_burst
WHERE app_key = :app_key RETURNING *;

-- seed_bucket --
-- An app's first lease finds its bucket full.
INSERT INTO rate_buckets (app_key, tokens, updated_at_ms)
VALUES (:app_key, :tokens, :now_ms)
ON CONFLICT (app_key) DO NOTHING;

-- lock_bucket --
SELECT tokens, updated_at_ms FROM rate_buckets WHERE app_key = :app_key;

-- save_bucket --
UPDATE rate_buckets SET tokens = :tokens, updated_at_ms = :updated_at_ms
WHERE app_key = :app_key;

-- writable --
-- The file's tables can be read (one writer at a time is SQLite's rule, not a failover).
SELECT 1 AS writable FROM (SELECT count(*) FROM apps WHERE 0) AS tables_readable;

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

-- set_callback_url --
UPDATE apps SET callback_url = :url WHERE app_key = :app_key RETURNING *;

-- insert_message --
-- A repeat of (app_key, msg_key) inserts nothing and returns no row.  With
-- :check_opt_out, an opted-out receiver (this app or every app) also inserts
-- nothing: the caller tells the two apart by looking for the key.
-- (WHERE on the SELECT: SQLite would otherwise read ON CONFLICT as a join's ON.)
INSERT INTO messages (
    app_key, msg_key, fingerprint, request_id, status, accepted_at_ms, updated_at_ms,
    event_time_millis, source, action, mobile_receiver, event_type, json_data, sender,
    resource_id, resource_url, text, template, encoding, segments, urgent, expires_at_ms,
    text_digest, trace_parent
)
SELECT
    :app_key, :msg_key, :fingerprint, :request_id, :status, :now_ms, :now_ms,
    :event_time_millis, :source, :action, :mobile_receiver, :event_type, :json_data, :sender,
    :resource_id, :resource_url, :text, :template, :encoding, :segments, :urgent, :expires_at_ms,
    :text_digest, :trace_parent
WHERE NOT (:check_opt_out AND EXISTS (
    SELECT 1 FROM opt_outs WHERE receiver = :mobile_receiver AND app_key IN (:app_key, '*')
))
ON CONFLICT (app_key, msg_key) DO NOTHING
RETURNING id;

-- insert_outbox --
INSERT INTO outbox (message_id, due_at_ms) VALUES (:message_id, :due_at_ms);

-- insert_entries --
-- An accepted message's first timeline entries: :entries is a JSON array of
-- {kind, detail}, accepted first, recorded in that order.
INSERT INTO timeline (message_id, at_ms, kind, status, detail)
SELECT :message_id, :now_ms, json_extract(value, '$.kind'), :status,
    json_extract(value, '$.detail')
FROM json_each(:entries)
ORDER BY key;

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
-- NULL bounds are no bounds: from is inclusive, until exclusive.
SELECT status, count(*) AS n FROM messages
WHERE accepted_at_ms >= coalesce(:accepted_from_ms, -9223372036854775808)
    AND accepted_at_ms < coalesce(:accepted_until_ms, 9223372036854775807)
GROUP BY status;

-- count_by_status_for_app --
SELECT status, count(*) AS n FROM messages
WHERE app_key = :app_key
    AND accepted_at_ms >= coalesce(:accepted_from_ms, -9223372036854775808)
    AND accepted_at_ms < coalesce(:accepted_until_ms, 9223372036854775807)
GROUP BY status;

-- find_messages --
-- Newest first; every NULL filter is "any".  :statuses is a JSON array or NULL.
SELECT * FROM messages
WHERE id < coalesce(:before_id, 9223372036854775807)
    AND (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
    AND (:receiver IS NULL OR mobile_receiver = :receiver)
    AND (:msg_key IS NULL OR msg_key = :msg_key)
    AND (:channel IS NULL OR channel = :channel)
    AND accepted_at_ms >= coalesce(:accepted_from_ms, -9223372036854775808)
    AND accepted_at_ms < coalesce(:accepted_until_ms, 9223372036854775807)
ORDER BY id DESC
LIMIT :limit;

-- find_messages_for_app --
-- One app's messages, newest first (served by messages_app).
SELECT * FROM messages
WHERE app_key = :app_key
    AND id < coalesce(:before_id, 9223372036854775807)
    AND (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
    AND (:receiver IS NULL OR mobile_receiver = :receiver)
    AND (:msg_key IS NULL OR msg_key = :msg_key)
    AND (:channel IS NULL OR channel = :channel)
    AND accepted_at_ms >= coalesce(:accepted_from_ms, -9223372036854775808)
    AND accepted_at_ms < coalesce(:accepted_until_ms, 9223372036854775807)
ORDER BY id DESC
LIMIT :limit;

-- receiver_facts --
-- Opt-out (this app or every app) and the dedupe question for one receiver;
-- a NULL :dedupe_since_ms asks no dedupe question.
SELECT
    EXISTS (
        SELECT 1 FROM opt_outs WHERE receiver = :receiver AND app_key IN (:app_key, '*')
    ) AS opted_out,
    :dedupe_since_ms IS NOT NULL AND EXISTS (
        SELECT 1 FROM messages
        WHERE mobile_receiver = :receiver AND text_digest = :text_digest
            AND accepted_at_ms > :dedupe_since_ms
    ) AS duplicate_text;

-- count_to_receiver --
-- Messages to a receiver accepted after :since_ms; NULL :app_key / :template: any.
SELECT count(*) AS n FROM messages
WHERE mobile_receiver = :receiver AND accepted_at_ms > :since_ms
    AND (:app_key IS NULL OR app_key = :app_key)
    AND (:template IS NULL OR template = :template);

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
SET status = 'sending',
    attempts = attempts + 1,
    step_attempts = step_attempts + 1,
    updated_at_ms = :now_ms
WHERE id = :message_id
RETURNING *, EXISTS (
    SELECT 1 FROM opt_outs
    WHERE opt_outs.receiver = mobile_receiver AND opt_outs.app_key IN (app_key, '*')
) AS receiver_opted_out;

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
    last_error = coalesce(:error, last_error),
    route_step = coalesce(:route_step, route_step),
    -- :attempt_not_made (0 or 1) gives back what claim_message counted.
    attempts = attempts - :attempt_not_made,
    step_attempts = CASE
        WHEN :route_step IS NULL THEN step_attempts - :attempt_not_made ELSE 0
    END
WHERE id = :message_id AND status IN (SELECT value FROM json_each(:sources))
RETURNING id;

-- requeue_message --
-- An operator's retry of a failed or expired message (:sources, a JSON array):
-- queued again on the first route step, with a new validity; no row from any
-- other status, nor once redacted (nothing is left to send).  (RETURNING shows
-- the new row: the old status is read before.)
UPDATE messages
SET status = 'queued',
    updated_at_ms = :now_ms,
    expires_at_ms = :expires_at_ms,
    route_step = 0,
    step_attempts = 0,
    last_error = NULL
WHERE id = :message_id AND status IN (SELECT value FROM json_each(:sources))
    AND redacted_at_ms IS NULL
RETURNING id;

-- schedule_outbox --
-- Back to queued: due again at :due_at_ms, and whatever lease there was is gone.
INSERT INTO outbox (message_id, due_at_ms) VALUES (:message_id, :due_at_ms)
ON CONFLICT (message_id) DO UPDATE
SET due_at_ms = excluded.due_at_ms, lease_owner = NULL, lease_expires_at_ms = NULL;

-- release_outbox --
DELETE FROM outbox WHERE message_id = :message_id;

-- insert_status_event --
-- Queued for the app's callback URL, if it has one now; due at once.
INSERT INTO status_events (message_id, app_key, msg_key, status, at_ms, url, detail, due_at_ms)
SELECT m.id, m.app_key, m.msg_key, :status, :now_ms, a.callback_url, :detail, :now_ms
FROM messages AS m JOIN apps AS a ON a.app_key = m.app_key
WHERE m.id = :message_id AND a.callback_url IS NOT NULL;

-- claim_status_event_candidates --
-- Undelivered events that are due or whose lease ran out, oldest due first.
SELECT id FROM status_events
WHERE claimable_at_ms <= :now_ms AND delivered_at_ms IS NULL AND given_up_at_ms IS NULL
ORDER BY claimable_at_ms, id
LIMIT :limit;

-- lease_status_event --
UPDATE status_events
SET lease_owner = :worker_id,
    lease_expires_at_ms = :lease_expires_at_ms,
    attempts = attempts + 1
WHERE id = :event_id
RETURNING *;

-- status_event_done --
-- Only while :worker_id holds the lease; no row otherwise.
UPDATE status_events
SET delivered_at_ms = :now_ms, lease_owner = NULL, lease_expires_at_ms = NULL
WHERE id = :event_id AND lease_owner = :worker_id
    AND delivered_at_ms IS NULL AND given_up_at_ms IS NULL
RETURNING *;

-- status_event_failed --
-- Due again at :retry_at_ms, or given up (NULL :retry_at_ms); only while
-- :worker_id holds the lease.
UPDATE status_events
SET lease_owner = NULL,
    lease_expires_at_ms = NULL,
    last_error = :error,
    due_at_ms = coalesce(:retry_at_ms, due_at_ms),
    given_up_at_ms = CASE WHEN :retry_at_ms IS NULL THEN :now_ms END
WHERE id = :event_id AND lease_owner = :worker_id
    AND delivered_at_ms IS NULL AND given_up_at_ms IS NULL
RETURNING *;

-- insert_template --
-- No row when the name or the selection key (app, source, action, event_type) is taken.
INSERT INTO templates (
    name, app_key, source, action, event_type, body, urgent, limits, created_at_ms,
    updated_at_ms
)
VALUES (
    :name, :app_key, :source, :action, :event_type, :body, :urgent, :limits, :created_at_ms,
    :updated_at_ms
)
ON CONFLICT DO NOTHING
RETURNING name;

-- update_template --
-- created_at_ms is kept; a taken selection key fails on the unique constraint.
UPDATE templates
SET app_key = :app_key, source = :source, action = :action, event_type = :event_type,
    body = :body, urgent = :urgent, limits = :limits, updated_at_ms = :updated_at_ms
WHERE name = :name
RETURNING name;

-- delete_template --
DELETE FROM templates WHERE name = :name RETURNING name;

-- get_template --
SELECT * FROM templates WHERE name = :name;

-- list_templates --
SELECT * FROM templates ORDER BY name;

-- add_opt_out --
INSERT INTO opt_outs (app_key, receiver, reason, created_at_ms)
VALUES (:app_key, :receiver, :reason, :created_at_ms)
ON CONFLICT DO NOTHING
RETURNING app_key;

-- remove_opt_out --
DELETE FROM opt_outs WHERE app_key = :app_key AND receiver = :receiver RETURNING app_key;

-- list_opt_outs --
-- Newest first; with :app_key, that app's and the every-app ('*') ones.
SELECT * FROM opt_outs
WHERE :app_key IS NULL OR app_key IN (:app_key, '*')
ORDER BY created_at_ms DESC, app_key, receiver;

-- is_opted_out --
SELECT 1 AS found FROM opt_outs WHERE receiver = :receiver AND app_key IN (:app_key, '*');

-- insert_segments --
-- Parts 1..:total of an attempt (only those in the JSON array :parts unless it is NULL:
-- a resend of the parts in doubt), pending; nothing if the attempt has segments already.
-- (WHERE on the SELECT: SQLite would otherwise read ON CONFLICT as a join's ON.)
WITH RECURSIVE parts (part) AS (
    SELECT 1 UNION ALL SELECT part + 1 FROM parts WHERE part < :total
)
INSERT INTO segments (message_id, attempt, part, total, channel, state, updated_at_ms)
SELECT :message_id, :attempt, part, :total, :channel, 'pending', :now_ms FROM parts
WHERE (:parts IS NULL OR part IN (SELECT value FROM json_each(:parts)))
AND NOT EXISTS (
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
-- With the number its message went to, for a receipt that names one.
SELECT segments.*, messages.mobile_receiver
FROM segments JOIN messages ON messages.id = segments.message_id
WHERE segments.channel = :channel AND segments.carrier_id = :carrier_id;

-- set_segment_state --
UPDATE segments
SET state = :state, error = :error, updated_at_ms = :now_ms
WHERE message_id = :message_id AND attempt = :attempt AND part = :part;

-- insert_unmatched_receipt --
INSERT INTO unmatched_receipts (
    channel, carrier_id, state, error, received_at_ms, detail, destination
)
VALUES (:channel, :carrier_id, :state, :error, :now_ms, :detail, :destination);

-- kept_receipts --
-- The receipts kept for a carrier id, in arrival order.
SELECT * FROM unmatched_receipts
WHERE channel = :channel AND carrier_id = :carrier_id
ORDER BY received_at_ms, id;

-- drop_kept_receipt --
DELETE FROM unmatched_receipts WHERE id = :id;

-- count_unmatched_receipts --
SELECT count(*) AS n FROM unmatched_receipts WHERE channel = :channel;

-- overdue_submissions --
-- Submitted messages whose validity ended before :before_ms, the longest overdue first.
SELECT id FROM messages
WHERE status = 'submitted' AND expires_at_ms < :before_ms
ORDER BY expires_at_ms, id
LIMIT :limit;

-- count_by_status_and_channel --
-- For /metrics: every message by status and by the channel it last used ('' before one).
SELECT status, coalesce(channel, '') AS channel, count(*) AS n FROM messages
GROUP BY status, coalesce(channel, '');

-- due_queue --
-- For /metrics: outbox rows due now and not leased, and the oldest one's due time.
SELECT count(*) AS n, min(due_at_ms) AS oldest_due_at_ms FROM outbox
WHERE lease_owner IS NULL AND due_at_ms <= :now_ms;

-- redact_candidates --
-- Ended messages (:final, a JSON array) that ended before :ended_before_ms and
-- still hold personal data, the longest ended first (served by messages_ended).
SELECT id, mobile_receiver FROM messages
WHERE status IN (SELECT value FROM json_each(:final))
    AND updated_at_ms < :ended_before_ms
    AND redacted_at_ms IS NULL
ORDER BY updated_at_ms, id
LIMIT :limit;

-- redact_message --
-- updated_at_ms is kept: it says when the message ended, which deletion counts from.
UPDATE messages
SET mobile_receiver = :receiver, json_data = :json_data, text = '', text_digest = '',
    redacted_at_ms = :now_ms
WHERE id = :message_id AND redacted_at_ms IS NULL
RETURNING id;

-- delete_ended --
-- Up to :limit ended messages (:final, a JSON array) matching every non-NULL
-- filter, the longest ended first; timeline, segments, outbox and status events
-- go with them (ON DELETE CASCADE).
DELETE FROM messages WHERE id IN (
    SELECT id FROM messages
    WHERE status IN (SELECT value FROM json_each(:final))
        AND updated_at_ms < coalesce(:ended_before_ms, 9223372036854775807)
        AND (:app_key IS NULL OR app_key = :app_key)
        AND (:msg_key IS NULL OR msg_key = :msg_key)
    ORDER BY updated_at_ms, id
    LIMIT :limit
)
RETURNING id;

-- drop_unmatched_receipts --
-- The oldest kept receipts, up to :limit (they hold a handset's number).
DELETE FROM unmatched_receipts WHERE id IN (
    SELECT id FROM unmatched_receipts
    WHERE received_at_ms < :received_before_ms
    ORDER BY received_at_ms, id
    LIMIT :limit
)
RETURNING id;

-- count_ended --
-- What delete_ended would take (ended) and keep because it has not ended (in_flight).
SELECT
    coalesce(sum(status IN (SELECT value FROM json_each(:final))), 0) AS ended,
    coalesce(sum(status NOT IN (SELECT value FROM json_each(:final))), 0) AS in_flight
FROM messages
WHERE updated_at_ms < coalesce(:ended_before_ms, 9223372036854775807)
    AND (:app_key IS NULL OR app_key = :app_key)
    AND (:msg_key IS NULL OR msg_key = :msg_key);

-- insert_audit --
INSERT INTO audit_log (at_ms, actor, action, target, detail)
VALUES (:at_ms, :actor, :action, :target, :detail);

-- list_audit --
-- Newest first; every NULL filter is "any".
SELECT * FROM audit_log
WHERE id < coalesce(:before_id, 9223372036854775807)
    AND at_ms >= coalesce(:since_ms, -9223372036854775808)
    AND (:actor IS NULL OR actor = :actor)
    AND (:action IS NULL OR action = :action)
ORDER BY id DESC
LIMIT :limit;

-- awaiting_receipts --
-- A channel's submitted segments still waiting for their receipt, of messages still
-- submitted, after the cursor (:after_ms, :after_id, :after_attempt) in that order:
-- a receipt poller pages through them round and round.
SELECT s.message_id, s.attempt, s.carrier_id, s.updated_at_ms, m.mobile_receiver
FROM segments AS s JOIN messages AS m ON m.id = s.message_id
WHERE s.channel = :channel AND s.state IN ('submitted', 'enroute')
    AND s.carrier_id IS NOT NULL AND m.status = 'submitted'
    AND (s.updated_at_ms, s.message_id, s.attempt) > (:after_ms, :after_id, :after_attempt)
ORDER BY s.updated_at_ms, s.message_id, s.attempt
LIMIT :limit;

-- insert_operator --
INSERT INTO operators (name, password_hash, created_at_ms, failed_sign_ins, locked_until_ms,
                       last_sign_in_ms)
VALUES (:name, :password_hash, :created_at_ms, :failed_sign_ins, :locked_until_ms,
        :last_sign_in_ms)
ON CONFLICT (name) DO NOTHING
RETURNING name;

-- get_operator --
SELECT * FROM operators WHERE name = :name;

-- list_operators --
SELECT * FROM operators ORDER BY name;

-- sign_in_failed --
-- One more failure in a row; the one that reaches :max_failures locks the account
-- until :now_ms + :lockout_ms and starts the count again.
UPDATE operators SET
    failed_sign_ins = CASE WHEN failed_sign_ins + 1 >= :max_failures THEN 0
                           ELSE failed_sign_ins + 1 END,
    locked_until_ms = CASE WHEN failed_sign_ins + 1 >= :max_failures THEN :now_ms + :lockout_ms
                           ELSE locked_until_ms END
WHERE name = :name
RETURNING *;

-- sign_in_succeeded --
UPDATE operators SET failed_sign_ins = 0, locked_until_ms = 0, last_sign_in_ms = :now_ms
WHERE name = :name;

-- activity --
-- Per bucket of :bucket_ms from :since_ms: messages accepted, and messages (accepted
-- since :since_ms) delivered, by the instant of their last change.
SELECT bucket, sum(accepted) AS accepted, sum(delivered) AS delivered FROM (
    SELECT (accepted_at_ms - :since_ms) / :bucket_ms AS bucket, 1 AS accepted, 0 AS delivered
    FROM messages WHERE accepted_at_ms >= :since_ms
    UNION ALL
    SELECT (updated_at_ms - :since_ms) / :bucket_ms, 0, 1
    FROM messages WHERE accepted_at_ms >= :since_ms AND status = 'delivered'
) AS counted
GROUP BY bucket
ORDER BY bucket;

-- open_channel --
-- A worker's breaker opened: every worker skips the channel until :open_until_ms.
-- The later opening wins.
INSERT INTO channel_breakers (channel, opened_at_ms, open_until_ms, opened_by)
VALUES (:channel, :opened_at_ms, :open_until_ms, :opened_by)
ON CONFLICT (channel) DO UPDATE SET
    opened_at_ms = excluded.opened_at_ms,
    open_until_ms = excluded.open_until_ms,
    opened_by = excluded.opened_by
WHERE excluded.opened_at_ms >= channel_breakers.opened_at_ms
RETURNING channel;

-- close_channel --
-- A worker's probes closed the breaker: an opening from before then is over.
DELETE FROM channel_breakers WHERE channel = :channel AND opened_at_ms <= :closed_at_ms
RETURNING channel;

-- open_channels --
SELECT channel, opened_at_ms, open_until_ms, opened_by FROM channel_breakers
WHERE open_until_ms > :now_ms ORDER BY channel;
