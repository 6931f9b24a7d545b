-- Channel circuit breakers shared by every worker of the store: a channel whose
-- breaker opened in one worker is skipped by all until open_until_ms (each then
-- probes it on its own).  One row per open channel; a closed channel has none.

CREATE TABLE channel_breakers (
    channel TEXT PRIMARY KEY,
    opened_at_ms INTEGER NOT NULL,
    open_until_ms INTEGER NOT NULL,
    opened_by TEXT NOT NULL
);
