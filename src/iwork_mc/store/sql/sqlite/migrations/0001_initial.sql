-- The initial schema: apps, messages, the outbox and the timeline.
-- STRICT tables: SQLite otherwise stores whatever type it is given.

CREATE TABLE apps (
    app_key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_expires_at_ms INTEGER,
    enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    created_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE messages (
    -- AUTOINCREMENT: an id is never reused, even after the newest row is deleted,
    -- because receipts and callbacks may still name it.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    app_key TEXT NOT NULL REFERENCES apps (app_key),
    msg_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    request_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (
        status IN ('queued', 'sending', 'submitted', 'delivered', 'failed', 'expired', 'rejected')
    ),
    accepted_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    channel TEXT,
    channel_ref TEXT,
    last_error TEXT,
    -- The MobileReceiverMessageEvent, one column per field.
    event_time_millis INTEGER NOT NULL,
    source TEXT NOT NULL,
    action TEXT NOT NULL,
    mobile_receiver TEXT NOT NULL,
    event_type TEXT NOT NULL,
    json_data TEXT NOT NULL,
    sender INTEGER NOT NULL,
    resource_id TEXT,
    resource_url TEXT,
    UNIQUE (app_key, msg_key)
) STRICT;

CREATE INDEX messages_status ON messages (status);

-- One row per message that has work to do: queued (waiting for due_at_ms) or
-- sending (leased to lease_owner until lease_expires_at_ms).
CREATE TABLE outbox (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    due_at_ms INTEGER NOT NULL,
    lease_owner TEXT,
    lease_expires_at_ms INTEGER,
    -- When a worker may take the row: when it is due, or when its lease runs out.
    claimable_at_ms INTEGER NOT NULL
        GENERATED ALWAYS AS (coalesce(lease_expires_at_ms, due_at_ms)) STORED,
    CHECK ((lease_owner IS NULL) = (lease_expires_at_ms IS NULL))
) STRICT;

-- Serves claim_due: a range scan in claim order.
CREATE INDEX outbox_claimable ON outbox (claimable_at_ms, message_id);

CREATE TABLE timeline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
) STRICT;

CREATE INDEX timeline_message ON timeline (message_id, at_ms, id);
