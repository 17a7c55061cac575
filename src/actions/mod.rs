//! One function per OCF action, and the dispatch from the action's name.

pub mod checks;
pub mod lifecycle;
pub mod monitor;
pub mod notify;
pub mod rejoin;
pub mod rewind;
pub mod slots;

use crate::agent::{ActionResult, Agent};
use crate::exit::OcfExit;
use crate::{metadata, validate};

/// What the agent is asked to do: the OCF actions, in the order meta-data
/// lists them, and `man`. The doc comment of each is its help text in
/// `--help` and its description in the manual page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Start the instance as a standby (standby.signal) and wait until it accepts connections in recovery.
    Start,
    /// Stop the instance with a fast shutdown and wait until it is down.
    Stop,
    /// Check that this standby is the best candidate (election, switchover safety), then promote it and wait until it is a primary.
    Promote,
    /// Stop the primary cleanly and start it again as a standby.
    Demote,
    /// Report the role of the instance; on the primary, also set the promotion score of every node from the replication state.
    Monitor,
    /// Election before a promotion, switchover safety check, recovery of a crashed instance before it is demoted or stopped.
    Notify,
    /// Take new parameter values; nothing is restarted (the pre-OCF 1.1 name of reload-agent).
    Reload,
    /// Take new values of the reloadable parameters (OCF 1.1): they are read at every action, nothing is restarted.
    ReloadAgent,
    /// Check the parameters, the binaries, the data directory and the PostgreSQL settings replication needs.
    ValidateAll,
    /// Print the agent's OCF meta-data.
    MetaData,
    /// List the supported actions.
    Methods,
    /// Print the manual page (man(7) roff).
    Man,
}

/// One `<action>` element of meta-data: default timeout and, for a
/// recurring action, its interval and role (seconds).
pub struct Advertised {
    pub timeout: u32,
    pub interval: Option<u32>,
    pub role: Option<&'static str>,
}

const fn once(timeout: u32) -> Advertised {
    Advertised { timeout, interval: None, role: None }
}

const fn every(timeout: u32, interval: u32, role: &'static str) -> Advertised {
    Advertised { timeout, interval: Some(interval), role: Some(role) }
}

impl Action {
    /// The action's name on the command line and in meta-data.
    pub fn name(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
    }

    /// Its help text (the variant's doc comment).
    pub fn description(self) -> String {
        use clap::ValueEnum;
        self.to_possible_value()
            .and_then(|v| v.get_help().map(|h| h.to_string()))
            .unwrap_or_default()
    }

    /// Its `<action>` elements in meta-data, one per role for monitor;
    /// none for what is not an OCF action.
    pub fn advertised(self) -> &'static [Advertised] {
        match self {
            Action::Start | Action::Stop | Action::Notify => const { &[once(60)] },
            Action::Promote => const { &[once(30)] },
            Action::Demote => const { &[once(120)] },
            Action::Monitor => const { &[every(10, 15, "Promoted"), every(10, 16, "Unpromoted")] },
            Action::Reload | Action::ReloadAgent => const { &[once(20)] },
            Action::ValidateAll | Action::MetaData | Action::Methods => const { &[once(5)] },
            Action::Man => &[],
        }
    }

    /// The OCF actions: those meta-data advertises.
    pub fn ocf() -> impl Iterator<Item = Action> {
        use clap::ValueEnum;
        Action::value_variants().iter().copied().filter(|a| !a.advertised().is_empty())
    }

    /// What it works on.
    pub fn kind(self) -> Kind {
        match self {
            Action::MetaData => Kind::Document(metadata::meta_data_xml),
            Action::Methods => Kind::Document(metadata::methods),
            Action::Man => Kind::Document(metadata::man_page),
            // stop stops whatever the definition; validate-all checks it
            // itself, parameters only when it runs outside a transition.
            Action::Stop | Action::ValidateAll => Kind::Resource { definition_first: false },
            Action::Start
            | Action::Promote
            | Action::Demote
            | Action::Monitor
            | Action::Notify
            | Action::Reload
            | Action::ReloadAgent => Kind::Resource { definition_first: true },
        }
    }

    /// Whether it reads the resource's parameters (and so fails on bad ones).
    pub fn needs_parameters(self) -> bool {
        matches!(self.kind(), Kind::Resource { .. })
    }

    /// Whether the resource definition is checked before the action runs.
    pub fn checks_resource_first(self) -> bool {
        matches!(self.kind(), Kind::Resource { definition_first: true })
    }
}

/// What an action works on.
pub enum Kind {
    /// Prints this document: needs no parameters and no runtime.
    Document(fn() -> String),
    /// Acts on the resource; `definition_first`: after a check of the
    /// resource definition.
    Resource { definition_first: bool },
}

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

/// Runs an action that needs the resource's parameters; the others print
/// a document and are answered in `main`.
pub async fn dispatch(action: Action, agent: &Agent) -> ActionResult {
    if action.checks_resource_first() {
        validate::check_resource(&agent.params, &agent.env)?;
    }
    match action {
        Action::Start => lifecycle::start(agent).await,
        Action::Stop => stop_despite_configuration(agent, None).await,
        Action::Promote => lifecycle::promote(agent).await,
        Action::Demote => lifecycle::demote(agent).await,
        Action::Monitor => monitor::monitor(agent).await,
        Action::Notify => notify::notify(agent).await,
        Action::Reload | Action::ReloadAgent => reload(agent).await,
        Action::ValidateAll => validate_all(agent).await,
        Action::MetaData | Action::Methods | Action::Man => Ok(OcfExit::ErrUnimplemented),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_action_has_a_name_clap_parses() {
        for a in Action::value_variants() {
            assert_eq!(Action::from_str(&a.name(), false), Ok(*a));
        }
    }

    #[test]
    fn the_resource_definition_is_checked_once_before_an_action_on_postgresql() {
        // validate-all runs check_parameters and check_clone_meta itself
        // (the latter only with clone meta attributes): a check here too
        // would refuse `pcs --agent-validation` and run every check twice.
        assert!(!Action::ValidateAll.checks_resource_first());
        assert!(!Action::Stop.checks_resource_first());
        for a in [Action::Start, Action::Promote, Action::Demote, Action::Monitor, Action::Notify] {
            assert!(a.checks_resource_first(), "{}", a.name());
        }
        for a in Action::value_variants().iter().filter(|a| !a.needs_parameters()) {
            assert!(!a.checks_resource_first(), "{}", a.name());
        }
    }

    #[test]
    fn every_ocf_action_is_described_and_advertised() {
        let names: Vec<String> = Action::ocf().map(Action::name).collect();
        assert_eq!(
            names,
            [
                "start",
                "stop",
                "promote",
                "demote",
                "monitor",
                "notify",
                "reload",
                "reload-agent",
                "validate-all",
                "meta-data",
                "methods"
            ]
        );
        for a in Action::value_variants() {
            assert!(!a.description().is_empty(), "{} has no help text", a.name());
        }
    }
}
