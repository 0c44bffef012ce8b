DROP TABLE stripe_webhook_events;
DROP TABLE tenant_billing;
