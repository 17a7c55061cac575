//! pgsqlms: OCF resource agent for PostgreSQL streaming replication.
//! A thin shell around `run`, which returns the OCF exit code.

mod actions;
mod agent;
mod cib;
mod controlfile;
mod crm_mon;
mod divergence;
mod election;
mod exit;
mod health;
mod healthd;
mod instance;
mod logging;
mod lsn;
mod metadata;
mod notify;
mod pacemaker;
mod params;
mod pg;
mod process;
mod role;
mod scores;
mod status;
mod status_cmd;
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
    /// methods, validate-all; `man` to print the manual page; `status` and
    /// `health-server` (see `pgsqlms status --help`, `pgsqlms health-server --help`)
    action: Option<String>,
}

/// The cluster at a glance, from any node (run as root).
#[derive(Parser)]
#[command(name = "pgsqlms status")]
struct StatusCli {
    /// Print JSON (schema in README.md, "Status view") instead of the table
    #[arg(long)]
    json: bool,
    /// The pgsqlms resource to show, when the CIB has several
    #[arg(long)]
    resource: Option<String>,
    /// Colours: auto (when stdout is a terminal and NO_COLOR is unset), always, never
    #[arg(long, default_value = "auto")]
    color: String,
}

/// HTTP health checks for load balancers: GET /primary, /replica[?lag=BYTES], /health.
#[derive(Parser)]
#[command(name = "pgsqlms health-server")]
struct HealthCli {
    /// Address and port to listen on (loopback by default: open it to the
    /// load balancer's network on purpose)
    #[arg(long, default_value = "127.0.0.1:8008")]
    listen: std::net::SocketAddr,
    /// The pgsqlms resource (names the promotion marker promote leaves)
    #[arg(long, default_value = "pgsqld")]
    resource: String,
    /// Socket directory (or host) of the local PostgreSQL
    #[arg(long, default_value = params::DEFAULT_PGHOST)]
    pghost: String,
    #[arg(long, default_value_t = params::DEFAULT_PGPORT)]
    pgport: u16,
    /// The user the session is opened as (peer authentication)
    #[arg(long, default_value = params::DEFAULT_SYSTEM_USER)]
    system_user: String,
    /// Pacemaker's resource-agent runtime directory (HA_RSCTMP)
    #[arg(long, default_value = "/run/resource-agents")]
    rsctmp: String,
    /// How long one check may wait for PostgreSQL, in milliseconds
    #[arg(long, default_value_t = 2000)]
    pg_timeout_ms: u64,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
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
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match argv.get(1).and_then(|a| a.to_str()) {
        Some("status") => return status_main(StatusCli::parse_from(&argv[1..])),
        Some("health-server") => return health_main(HealthCli::parse_from(&argv[1..])),
        _ => {}
    }
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    run(cli.action.as_deref(), env).into()
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn status_main(cli: StatusCli) -> ExitCode {
    use std::io::IsTerminal;
    let colour = match cli.color.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let work = async {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let view = status_cmd::pacemaker_view(cli.resource.as_deref(), deadline).await?;
        let params = status_cmd::params_of(&view.resource)?;
        let pg = status_cmd::local_pg(&params, true, deadline).await;
        Ok::<_, String>(status::build(&view.resource.id, &view.local, &view.status, &pg))
    };
    match runtime().and_then(|rt| rt.block_on(work)) {
        Ok(report) => {
            if cli.json {
                println!("{}", status::to_json(&report));
            } else {
                print!("{}", status::render(&report, colour));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pgsqlms status: {e}");
            ExitCode::FAILURE
        }
    }
}

fn health_main(cli: HealthCli) -> ExitCode {
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    logging::init(&env);
    let params = params::Params {
        system_user: cli.system_user,
        pghost: cli.pghost,
        pgport: cli.pgport,
        ..params::Params::from_env(&HashMap::new()).expect("defaults are valid")
    };
    let cfg = healthd::Config {
        listen: cli.listen,
        tls: cli.tls_cert.zip(cli.tls_key),
        params,
        resource: cli.resource,
        rsctmp: cli.rsctmp,
        pg_timeout: std::time::Duration::from_millis(cli.pg_timeout_ms),
    };
    let result = runtime().and_then(|rt| {
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, healthd::serve(cfg))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgsqlms health-server: {e}");
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
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
    let params = match params::Params::from_env(&env) {
        Ok(p) => p,
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
    let result = runtime.block_on(actions::dispatch(action, &agent));
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
