//! One function per OCF action, and the dispatch from the action's name.

pub mod checks;
pub mod lifecycle;
pub mod monitor;
pub mod notify;
pub mod rejoin;

use crate::agent::{ActionResult, Agent};
use crate::exit::OcfExit;
use crate::validate;

pub async fn validate_all(agent: &Agent) -> ActionResult {
    validate::check_resource(&agent.params, &agent.env)?;
    checks::local(agent, true).await?;
    Ok(OcfExit::Success)
}

pub async fn reload(_agent: &Agent) -> ActionResult {
    // Parameters are read at every action: nothing to restart.
    log::info!("parameters reloaded");
    Ok(OcfExit::Success)
}

pub async fn dispatch(action: &str, agent: &Agent) -> ActionResult {
    // The resource definition is checked before anything touches PostgreSQL.
    validate::check_resource(&agent.params, &agent.env)?;
    match action {
        "start" => lifecycle::start(agent).await,
        "stop" => lifecycle::stop(agent).await,
        "promote" => lifecycle::promote(agent).await,
        "demote" => lifecycle::demote(agent).await,
        "monitor" => monitor::monitor(agent).await,
        "notify" => notify::notify(agent).await,
        "reload" => reload(agent).await,
        "validate-all" => validate_all(agent).await,
        _ => Ok(OcfExit::ErrUnimplemented),
    }
}
