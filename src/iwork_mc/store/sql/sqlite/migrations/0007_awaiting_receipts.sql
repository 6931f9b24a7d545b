-- Receipt pollers (cloud SMS providers that answer status queries) page through a
-- channel's segments still waiting for a receipt, oldest first.
CREATE INDEX segments_awaiting ON segments (channel, updated_at_ms, message_id, attempt)
WHERE state IN ('submitted', 'enroute');
