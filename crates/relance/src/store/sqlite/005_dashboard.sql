-- Hourly counters for the dashboard, added to in the transaction that stores the events
-- (see store/dashboard.rs): a week of activity reads a few hundred rows, not every event.
CREATE TABLE hourly_counts (
    hour  INTEGER NOT NULL,
    kind  TEXT NOT NULL,
    name  TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (hour, kind, name)
) WITHOUT ROWID;

-- Counters for what was stored before this migration.
INSERT INTO hourly_counts (hour, kind, name, count)
SELECT (received_at / 3600000) * 3600000, 'trigger', COALESCE(trigger, 'none'), count(*)
FROM events GROUP BY 1, 3;

INSERT INTO hourly_counts (hour, kind, name, count)
SELECT (at / 3600000) * 3600000, 'rule', rule_id, count(*)
FROM (
    SELECT min(at) AS at, rule_id FROM (
        SELECT at, rule_id, event_id FROM history WHERE rule_id IS NOT NULL AND event_id IS NOT NULL
        UNION ALL
        SELECT created_at, rule_id, event_id FROM jobs WHERE event_id IS NOT NULL
    ) GROUP BY event_id, rule_id
) GROUP BY 1, 3;
