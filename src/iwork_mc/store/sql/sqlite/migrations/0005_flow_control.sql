-- Flow control: a per-app rate override (NULL: the configured default) and the
-- token bucket every gateway process leases slices from (see ratelimits.py).
ALTER TABLE apps ADD COLUMN rate_limit REAL CHECK (rate_limit IS NULL OR rate_limit >= 0);
ALTER TABLE apps ADD COLUMN rate_burst INTEGER CHECK (rate_burst IS NULL OR rate_burst >= 1);

CREATE TABLE rate_buckets (
    app_key TEXT PRIMARY KEY REFERENCES apps (app_key),
    tokens REAL NOT NULL,
    updated_at_ms INTEGER NOT NULL
) STRICT;
