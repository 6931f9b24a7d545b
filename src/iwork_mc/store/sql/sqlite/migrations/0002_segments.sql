-- Segments: the parts of one attempt to send a message through a carrier (a long
-- SMS travels as several), each with the carrier's own id and delivery receipt.
-- Unmatched receipts: receipts whose carrier id names no segment yet (a receipt
-- can overtake the submit_sm_resp that tells us the id); applied and deleted
-- when the id arrives.

CREATE TABLE segments (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    part INTEGER NOT NULL,
    total INTEGER NOT NULL CHECK (total >= 1),
    channel TEXT NOT NULL,
    -- NULL until the carrier answers the segment's submission.
    carrier_id TEXT,
    state TEXT NOT NULL CHECK (
        state IN (
            'pending', 'refused', 'submitted', 'enroute', 'delivered', 'expired', 'undeliverable',
            'rejected', 'deleted', 'unknown'
        )
    ),
    error TEXT,
    updated_at_ms INTEGER NOT NULL,
    PRIMARY KEY (message_id, attempt, part),
    CHECK (part BETWEEN 1 AND total)
) STRICT;

-- A carrier id names one segment per channel; receipts are looked up by it.
CREATE UNIQUE INDEX segments_carrier ON segments (channel, carrier_id)
WHERE carrier_id IS NOT NULL;

CREATE TABLE unmatched_receipts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    carrier_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (
        state IN (
            'pending', 'submitted', 'enroute', 'delivered', 'expired', 'undeliverable',
            'rejected', 'deleted', 'unknown'
        )
    ),
    error TEXT,
    received_at_ms INTEGER NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail))
) STRICT;

-- Serves segment_submitted (arrival order per carrier id) and the count per channel.
CREATE INDEX unmatched_receipts_carrier
ON unmatched_receipts (channel, carrier_id, received_at_ms, id);
