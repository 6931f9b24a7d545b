-- Tracing: the W3C traceparent of the TOP call that accepted a message, so the
-- worker's send and the receipt continue that call's trace.  '' when tracing is off.

ALTER TABLE messages ADD COLUMN trace_parent text NOT NULL DEFAULT '';
