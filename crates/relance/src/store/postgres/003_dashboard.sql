-- Hourly counters for the dashboard (see store/dashboard.rs).
CREATE TABLE hourly_counts (
    hour  BIGINT NOT NULL,
    kind  TEXT NOT NULL,
    name  TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (hour, kind, name)
);

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
    ) AS fired GROUP BY event_id, rule_id
) AS firsts GROUP BY 1, 3;
