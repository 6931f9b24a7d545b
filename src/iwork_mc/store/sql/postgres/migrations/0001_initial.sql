-- The initial schema: apps, messages, the outbox and the timeline.
-- No schema is named: objects go to the first schema of search_path.

CREATE TABLE apps (
    app_key text PRIMARY KEY,
    name text NOT NULL,
    secret text NOT NULL,
    previous_secret text,
    previous_secret_expires_at_ms bigint,
    enabled boolean NOT NULL,
    created_at_ms bigint NOT NULL
);

CREATE TABLE messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_key text NOT NULL REFERENCES apps (app_key),
    msg_key text NOT NULL,
    fingerprint text NOT NULL,
    request_id text NOT NULL,
    status text NOT NULL CHECK (
        status IN ('queued', 'sending', 'submitted', 'delivered', 'failed', 'expired', 'rejected')
    ),
    accepted_at_ms bigint NOT NULL,
    updated_at_ms bigint NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    channel text,
    channel_ref text,
    last_error text,
    -- The MobileReceiverMessageEvent, one column per field.
    event_time_millis bigint NOT NULL,
    source text NOT NULL,
    action text NOT NULL,
    mobile_receiver text NOT NULL,
    event_type text NOT NULL,
    json_data text NOT NULL,
    sender bigint NOT NULL,
    resource_id text,
    resource_url text,
    UNIQUE (app_key, msg_key)
);

CREATE INDEX messages_status ON messages (status);

-- One row per message that has work to do: queued (waiting for due_at_ms) or
-- sending (leased to lease_owner until lease_expires_at_ms).
CREATE TABLE outbox (
    message_id bigint PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    due_at_ms bigint NOT NULL,
    lease_owner text,
    lease_expires_at_ms bigint,
    -- When a worker may take the row: when it is due, or when its lease runs out.
    claimable_at_ms bigint NOT NULL
        GENERATED ALWAYS AS (coalesce(lease_expires_at_ms, due_at_ms)) STORED,
    CHECK ((lease_owner IS NULL) = (lease_expires_at_ms IS NULL))
);

-- Serves claim_due: a range scan in claim order.
CREATE INDEX outbox_claimable ON outbox (claimable_at_ms, message_id);

CREATE TABLE timeline (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    at_ms bigint NOT NULL,
    kind text NOT NULL,
    status text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX timeline_message ON timeline (message_id, at_ms, id);
