-- The audit trail (who changed what, when) and retention (redaction of ended messages).

CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms bigint NOT NULL,
    -- operator:<name> or app:<app_key>
    actor text NOT NULL,
    action text NOT NULL,
    target text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_log_at ON audit_log (at_ms, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);

-- When retention redacted the message's personal data; NULL while it has it.
ALTER TABLE messages ADD COLUMN redacted_at_ms bigint;

-- Serves the retention sweep and purges: ended messages in the order they ended.
CREATE INDEX messages_ended ON messages (status, updated_at_ms);
