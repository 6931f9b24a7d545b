-- The message engine: rendered text and its cost, urgency, validity and route
-- position on each message; templates; opt-outs; per-app status callbacks and
-- the status events queued for them.  Existing messages keep working: every new
-- column has a default (text '' means "rendered by a worker, as before").

ALTER TABLE messages ADD COLUMN text TEXT NOT NULL DEFAULT '';
-- The template that rendered text; '' for the configured default.
ALTER TABLE messages ADD COLUMN template TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN encoding TEXT NOT NULL DEFAULT 'gsm7';
ALTER TABLE messages ADD COLUMN segments INTEGER NOT NULL DEFAULT 1 CHECK (segments >= 1);
ALTER TABLE messages ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0 CHECK (urgent IN (0, 1));
ALTER TABLE messages ADD COLUMN expires_at_ms INTEGER;
-- SHA-256 of text (hex) for the dedupe window; '' when no policy asked for it.
ALTER TABLE messages ADD COLUMN text_digest TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN route_step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN step_attempts INTEGER NOT NULL DEFAULT 0;

-- Serve the receiver policies' counts, the dedupe question and an app's search.
CREATE INDEX messages_receiver ON messages (mobile_receiver, accepted_at_ms);
CREATE INDEX messages_receiver_text ON messages (mobile_receiver, text_digest, accepted_at_ms);
CREATE INDEX messages_app ON messages (app_key, id);

-- '' in app_key, source, action or event_type matches any value.
CREATE TABLE templates (
    name TEXT PRIMARY KEY,
    app_key TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL DEFAULT '',
    event_type TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL,
    urgent INTEGER NOT NULL DEFAULT 0 CHECK (urgent IN (0, 1)),
    limits TEXT NOT NULL DEFAULT '',
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    UNIQUE (app_key, source, action, event_type)
) STRICT;

-- app_key '*': the receiver gets nothing from any app.  No foreign key: '*' is no app.
CREATE TABLE opt_outs (
    app_key TEXT NOT NULL,
    receiver TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_key, receiver)
) STRICT;

CREATE INDEX opt_outs_receiver ON opt_outs (receiver);

ALTER TABLE apps ADD COLUMN callback_url TEXT;

-- One row per status change of a message whose app had a callback URL at the
-- time, delivered at least once: leased like the outbox until delivered or
-- given up.
CREATE TABLE status_events (
    -- AUTOINCREMENT: ids only grow, receivers drop repeats by id.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    app_key TEXT NOT NULL,
    msg_key TEXT NOT NULL,
    status TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    url TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail)),
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at_ms INTEGER NOT NULL,
    lease_owner TEXT,
    lease_expires_at_ms INTEGER,
    delivered_at_ms INTEGER,
    given_up_at_ms INTEGER,
    last_error TEXT,
    -- When a sender may take the event: when it is due, or when its lease runs out.
    claimable_at_ms INTEGER NOT NULL
        GENERATED ALWAYS AS (coalesce(lease_expires_at_ms, due_at_ms)) STORED,
    CHECK ((lease_owner IS NULL) = (lease_expires_at_ms IS NULL))
) STRICT;

-- Serves claim_status_events: only the events still to deliver, in claim order.
CREATE INDEX status_events_claimable ON status_events (claimable_at_ms, id)
WHERE delivered_at_ms IS NULL AND given_up_at_ms IS NULL;

CREATE INDEX status_events_message ON status_events (message_id);
