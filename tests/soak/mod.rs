//! The seeded fault soak of tests/cluster_soak.rs: schedule (plan, prng),
//! recorded history, checker (pure), driver (I/O).
pub mod checker;
pub mod driver;
pub mod history;
pub mod plan;
pub mod prng;
