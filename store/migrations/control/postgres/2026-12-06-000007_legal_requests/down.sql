DROP TABLE legal_requests;
