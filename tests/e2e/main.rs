//! End-to-end tests: smsrelay-local over real HTTP (SQLite + simulator), the Lambda handlers fed
//! with `events/*.json` on DynamoDB Local with a Twilio-shaped server, and the SAM template.

mod agent;
mod alerts;
mod batches;
mod browser;
mod campaigns;
mod console;
mod faults;
mod harness;
mod health;
mod helpers;
mod http_contract;
mod inbound;
mod lambda_events;
mod lambda_runtime;
mod local_http;
mod openapi;
mod permissions;
mod retries;
mod scheduling;
mod secrets;
mod template;
mod twilio_mock;
mod validation;
