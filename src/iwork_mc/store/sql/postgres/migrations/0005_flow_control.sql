-- Flow control: a per-app rate override (NULL: the configured default) and the
-- token bucket every gateway process leases slices from (see ratelimits.py).
ALTER TABLE apps ADD COLUMN rate_limit double precision CHECK (rate_limit IS NULL OR rate_limit >= 0);
ALTER TABLE apps ADD COLUMN rate_burst integer CHECK (rate_burst IS NULL OR rate_burst >= 1);

CREATE TABLE rate_buckets (
    app_key text PRIMARY KEY REFERENCES apps (app_key),
    tokens double precision NOT NULL,
    updated_at_ms bigint NOT NULL
);
