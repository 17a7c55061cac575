//! Single-node actions of the agent against PostgreSQL 15 (Debian's). The
//! bodies are shared with actions_pg18.rs: tests/support/cases.rs.
mod support;

action_tests!(15);
