-- Delivery items that could never be stored as events (not an object, no email…), kept
-- for a person to see: Brevo drops a delivery answered 4xx, so the batch is answered 200
-- and its bad items land here. A redelivery of the same item counts up `times`.
CREATE TABLE rejected_deliveries (
    id               INTEGER PRIMARY KEY,
    payload_hash     TEXT NOT NULL UNIQUE,
    source           TEXT NOT NULL,
    first_received_at INTEGER NOT NULL,
    last_received_at INTEGER NOT NULL,
    times            INTEGER NOT NULL,
    field            TEXT NOT NULL,
    error            TEXT NOT NULL,
    payload          TEXT NOT NULL
);
CREATE INDEX rejected_deliveries_last ON rejected_deliveries (last_received_at);
