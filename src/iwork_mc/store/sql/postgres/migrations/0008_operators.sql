-- Operator accounts of the web console (created with `iwork-mc operators create`),
-- with what the sign-in lock-out needs; and the indexes the console's search and
-- overview read: a msg_key of any app, and messages by acceptance time.

CREATE TABLE operators (
    name text PRIMARY KEY,
    -- An argon2id hash in PHC form ($argon2id$v=19$...); never the password.
    password_hash text NOT NULL,
    created_at_ms bigint NOT NULL,
    -- Failed sign-ins since the last success or lock-out.
    failed_sign_ins integer NOT NULL DEFAULT 0 CHECK (failed_sign_ins >= 0),
    -- Sign-ins are refused until this instant (0: not locked).
    locked_until_ms bigint NOT NULL DEFAULT 0,
    last_sign_in_ms bigint
);

CREATE INDEX messages_msg_key ON messages (msg_key);
CREATE INDEX messages_accepted ON messages (accepted_at_ms);
