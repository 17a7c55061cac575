//! One function per OCF action, and the dispatch from the action's name.

pub mod checks;
pub mod lifecycle;
pub mod monitor;
pub mod notify;
pub mod rejoin;
pub mod rewind;

use crate::agent::{ActionResult, Agent};
use crate::exit::OcfExit;
use crate::validate;

pub async fn validate_all(agent: &Agent) -> ActionResult {
    validate::check_parameters(&agent.params, &agent.env)?;
    if validate::clone_meta_given(&agent.env) {
        validate::check_clone_meta(&agent.env)?;
    } else {
        log::info!(
            "no clone meta attributes given (e.g. pcs --agent-validation): notify=true and promoted-max=1 not checked here, they are at every cluster action"
        );
    }
    let settings = checks::local(agent, true).await?.expect("settings were asked for");
    rewind::validate(agent, &settings).await?;
    Ok(OcfExit::Success)
}

/// Stop first, then report what is wrong with the resource definition
/// (`deferred`: a parameter that could not be parsed, found by the caller).
/// A stop returning an error, 6 included, is a failed stop: Pacemaker fences
/// the node, a reboot that fixes no configuration, and could not stop the
/// instance either if the agent refused to. So a stop that stopped returns
/// 0 and logs the configuration error loudly; the error itself reaches
/// Pacemaker through the next start, probe or monitor, which return 6 and
/// keep the resource from running anywhere until it is fixed.
pub async fn stop_despite_configuration(agent: &Agent, deferred: Option<&str>) -> ActionResult {
    let problem = deferred
        .map(str::to_string)
        .or_else(|| validate::check_resource(&agent.params, &agent.env).err().map(|p| p.reason));
    if let Some(why) = &problem {
        log::error!("configuration error (stopping anyway): {why}");
    }
    let r = lifecycle::stop(agent).await;
    if let (Ok(_), Some(why)) = (&r, &problem) {
        log::error!("instance stopped, but the resource is misconfigured: {why}");
    }
    r
}

pub async fn reload(_agent: &Agent) -> ActionResult {
    // Parameters are read at every action: nothing to restart.
    log::info!("parameters reloaded");
    Ok(OcfExit::Success)
}

pub async fn dispatch(action: &str, agent: &Agent) -> ActionResult {
    if action == "stop" {
        return stop_despite_configuration(agent, None).await;
    }
    // The resource definition is checked before anything touches PostgreSQL
    // (validate-all checks it itself: it may run outside a transition).
    if action != "validate-all" {
        validate::check_resource(&agent.params, &agent.env)?;
    }
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
