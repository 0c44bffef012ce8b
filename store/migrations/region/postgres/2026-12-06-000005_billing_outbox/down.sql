DROP TABLE billing_outbox;
