//! pgsqlms: OCF resource agent for PostgreSQL streaming replication.
//! A thin shell around `run`, which returns the OCF exit code.

mod actions;
mod agent;
mod cib;
mod conninfo;
mod controlfile;
mod divergence;
mod election;
mod exit;
mod hang;
mod instance;
mod logging;
mod lsn;
mod metadata;
mod notify;
mod pacemaker;
mod params;
mod pg;
mod process;
mod procfs;
mod role;
mod scores;
mod validate;
mod waldump;

use clap::Parser;
use exit::OcfExit;
use std::collections::HashMap;
use std::process::ExitCode;

/// OCF resource agent managing PostgreSQL streaming replication
/// (ocf:rust:pgsqlms). Pacemaker runs it with the action as its only
/// argument and the parameters in OCF_RESKEY_* variables.
#[derive(Parser)]
#[command(name = "pgsqlms", version, about, long_about = None)]
struct Cli {
    /// start, stop, monitor, promote, demote, notify, reload, meta-data,
    /// methods, validate-all; or `man` to print the manual page
    action: Option<String>,
}

const ACTIONS: &[&str] = &[
    "start",
    "stop",
    "monitor",
    "promote",
    "demote",
    "notify",
    "reload",
    "meta-data",
    "methods",
    "validate-all",
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    run(cli.action.as_deref(), env).into()
}

fn run(action: Option<&str>, env: HashMap<String, String>) -> OcfExit {
    let Some(action) = action else {
        eprintln!("usage: pgsqlms {{{}}}", ACTIONS.join("|"));
        return OcfExit::ErrArgs;
    };
    // Actions that need neither parameters nor a runtime.
    match action {
        "meta-data" => {
            print!("{}", metadata::meta_data_xml());
            return OcfExit::Success;
        }
        "methods" => {
            print!("{}", metadata::methods());
            return OcfExit::Success;
        }
        "man" => {
            print!("{}", metadata::man_page());
            return OcfExit::Success;
        }
        _ => {}
    }
    logging::init(&env);
    if !ACTIONS.contains(&action) {
        logging::exit_reason(&env, &format!("action \"{action}\" is not implemented"));
        return OcfExit::ErrUnimplemented;
    }
    let started = tokio::time::Instant::now();
    // stop needs only where the instance is and who runs it: a bad value
    // of a parameter it does not use must not keep it from stopping
    // (actions::stop_despite_configuration says why).
    let (params, deferred) = match params::Params::from_env(&env) {
        Ok(p) => (p, None),
        Err(e) if action == "stop" => {
            let mut lenient = env.clone();
            for unused in ["OCF_RESKEY_maxlag", "OCF_RESKEY_pgport"] {
                lenient.remove(unused);
            }
            match params::Params::from_env(&lenient) {
                Ok(p) => (p, Some(e.0)),
                Err(_) => {
                    logging::exit_reason(&env, &e.0);
                    return OcfExit::ErrConfigured;
                }
            }
        }
        Err(e) => {
            logging::exit_reason(&env, &e.0);
            return OcfExit::ErrConfigured;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            logging::exit_reason(&env, &format!("cannot start the async runtime: {e}"));
            return OcfExit::ErrGeneric;
        }
    };
    let agent = agent::Agent::new(env, params, started);
    let result = match deferred {
        Some(why) => runtime.block_on(actions::stop_despite_configuration(&agent, Some(&why))),
        None => runtime.block_on(actions::dispatch(action, &agent)),
    };
    let code = match result {
        Ok(code) => code,
        Err(f) => {
            logging::exit_reason(&agent.env, &f.reason);
            f.code
        }
    };
    log::debug!("{action} returns {} ({})", code.code(), code.name());
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_action_is_an_argument_error() {
        assert_eq!(run(None, HashMap::new()), OcfExit::ErrArgs);
    }

    #[test]
    fn unknown_actions_are_unimplemented() {
        assert_eq!(run(Some("migrate_to"), HashMap::new()), OcfExit::ErrUnimplemented);
    }

    #[test]
    fn metadata_and_methods_need_nothing() {
        assert_eq!(run(Some("meta-data"), HashMap::new()), OcfExit::Success);
        assert_eq!(run(Some("methods"), HashMap::new()), OcfExit::Success);
    }

    #[test]
    fn bad_parameters_are_a_configuration_error() {
        let env: HashMap<String, String> =
            [("OCF_RESKEY_maxlag", "lots"), ("HA_LOGFACILITY", "none")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(run(Some("monitor"), env), OcfExit::ErrConfigured);
    }
}
