-- A callback's stored event is the record of what the callbacks consumer
-- still owes: the local queue hands verified callbacks over in memory, and a
-- stack that starts again sends every event still `received` once more
-- (Store::received_webhook_events). The index holds only those events, so it
-- stays small however many have been processed.
CREATE INDEX webhook_events_received ON webhook_events (created_at) WHERE status = 'received';
