-- one row per write transaction, written in it: a host whose COMMIT's answer was lost looks
-- its token up on a new connection to learn whether the commit was made (a transaction id
-- cannot tell: after a crash, an id whose transaction left no WAL is given out again).
-- The leader deletes tokens older than an hour.
CREATE TABLE {s}.commits (
    token bigint PRIMARY KEY,
    at bigint NOT NULL
);
