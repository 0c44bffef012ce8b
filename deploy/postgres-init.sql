-- One database per region beside the control database (created by POSTGRES_DB).
CREATE DATABASE faceplate_eu OWNER faceplate;
CREATE DATABASE faceplate_us OWNER faceplate;
