-- The audit trail (who changed what, when) and retention (redaction of ended messages).

CREATE TABLE audit_log (
    -- AUTOINCREMENT: ids only grow, so a page of the trail never skips a record.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    -- operator:<name> or app:<app_key>
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
) STRICT;

CREATE INDEX audit_log_at ON audit_log (at_ms, id);
CREATE INDEX audit_log_actor ON audit_log (actor, id);

-- When retention redacted the message's personal data; NULL while it has it.
ALTER TABLE messages ADD COLUMN redacted_at_ms INTEGER;

-- Serves the retention sweep and purges: ended messages in the order they ended.
CREATE INDEX messages_ended ON messages (status, updated_at_ms);
