DROP INDEX alert_outbox_due;
DROP TABLE alert_outbox;
