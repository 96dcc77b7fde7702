-- the schedules of periodic jobs: the whole record as JSON beside the cursor, the column a
-- firing compares and sets (slots at or before it have been dealt with).
CREATE TABLE {s}.schedules (
    name text COLLATE "C" PRIMARY KEY,
    cursor bigint NOT NULL,
    record text NOT NULL
);
