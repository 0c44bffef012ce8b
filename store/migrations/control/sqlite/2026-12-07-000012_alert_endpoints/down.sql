DROP TABLE alert_endpoints;
