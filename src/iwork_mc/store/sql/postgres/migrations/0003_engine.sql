-- The message engine: rendered text and its cost, urgency, validity and route
-- position on each message; templates; opt-outs; per-app status callbacks and
-- the status events queued for them.  Existing messages keep working: every new
-- column has a default (text '' means "rendered by a worker, as before").

ALTER TABLE messages
    ADD COLUMN text text NOT NULL DEFAULT '',
    -- The template that rendered text; '' for the configured default.
    ADD COLUMN template text NOT NULL DEFAULT '',
    ADD COLUMN encoding text NOT NULL DEFAULT 'gsm7',
    ADD COLUMN segments integer NOT NULL DEFAULT 1 CHECK (segments >= 1),
    ADD COLUMN urgent boolean NOT NULL DEFAULT false,
    ADD COLUMN expires_at_ms bigint,
    -- SHA-256 of text (hex) for the dedupe window; '' when no policy asked for it.
    ADD COLUMN text_digest text NOT NULL DEFAULT '',
    ADD COLUMN route_step integer NOT NULL DEFAULT 0,
    ADD COLUMN step_attempts integer NOT NULL DEFAULT 0;

-- Serve the receiver policies' counts, the dedupe question and an app's search.
CREATE INDEX messages_receiver ON messages (mobile_receiver, accepted_at_ms);
CREATE INDEX messages_receiver_text ON messages (mobile_receiver, text_digest, accepted_at_ms);
CREATE INDEX messages_app ON messages (app_key, id);

-- '' in app_key, source, action or event_type matches any value.
CREATE TABLE templates (
    name text PRIMARY KEY,
    app_key text NOT NULL DEFAULT '',
    source text NOT NULL DEFAULT '',
    action text NOT NULL DEFAULT '',
    event_type text NOT NULL DEFAULT '',
    body text NOT NULL,
    urgent boolean NOT NULL DEFAULT false,
    limits text NOT NULL DEFAULT '',
    created_at_ms bigint NOT NULL,
    updated_at_ms bigint NOT NULL,
    UNIQUE (app_key, source, action, event_type)
);

-- app_key '*': the receiver gets nothing from any app.  No foreign key: '*' is no app.
CREATE TABLE opt_outs (
    app_key text NOT NULL,
    receiver text NOT NULL,
    reason text NOT NULL DEFAULT '',
    created_at_ms bigint NOT NULL,
    PRIMARY KEY (app_key, receiver)
);

CREATE INDEX opt_outs_receiver ON opt_outs (receiver);

ALTER TABLE apps ADD COLUMN callback_url text;

-- One row per status change of a message whose app had a callback URL at the
-- time, delivered at least once: leased like the outbox until delivered or
-- given up.
CREATE TABLE status_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    app_key text NOT NULL,
    msg_key text NOT NULL,
    status text NOT NULL,
    at_ms bigint NOT NULL,
    url text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}',
    attempts integer NOT NULL DEFAULT 0,
    due_at_ms bigint NOT NULL,
    lease_owner text,
    lease_expires_at_ms bigint,
    delivered_at_ms bigint,
    given_up_at_ms bigint,
    last_error text,
    -- When a sender may take the event: when it is due, or when its lease runs out.
    claimable_at_ms bigint NOT NULL
        GENERATED ALWAYS AS (coalesce(lease_expires_at_ms, due_at_ms)) STORED,
    CHECK ((lease_owner IS NULL) = (lease_expires_at_ms IS NULL))
);

-- Serves claim_status_events: only the events still to deliver, in claim order.
CREATE INDEX status_events_claimable ON status_events (claimable_at_ms, id)
WHERE delivered_at_ms IS NULL AND given_up_at_ms IS NULL;

CREATE INDEX status_events_message ON status_events (message_id);
