//! The balancer's health checks, seen at work: one node put offline with `pkgnode offline` (it
//! keeps running and answering, but its `/__ping__` answers 503), the balancer's view read
//! until that node's server leaves rotation; then `pkgnode online` and the view read until it
//! returns. Nothing is killed, and the node is put online again whatever happened.

use std::time::{Duration, Instant};

use super::super::ChecklistOptions;
use super::super::facts::{DrainFacts, NodeFacts};
use crate::infra::Infra;

/// How often the balancer's view and the node's `/__ping__` are read.
const POLL: Duration = Duration::from_millis(100);

/// Drains the first node that is Online, serving and UP at the balancer, and watches.
pub async fn drain(
    infra: &dyn Infra,
    client: &reqwest::Client,
    nodes: &[NodeFacts],
    balancer: &Option<Result<Vec<(String, String)>, String>>,
    options: &ChecklistOptions,
) -> DrainFacts {
    let within = options.balancer_reacts_within;
    let mut facts = DrainFacts {
        within_s: within.as_secs_f64(),
        ..DrainFacts::default()
    };
    let states = match balancer {
        None => {
            facts.not_run = Some("the balancer's view of its servers cannot be read".into());
            return facts;
        }
        Some(Err(error)) => {
            facts.not_run = Some(format!("the balancer's stats could not be read: {error}"));
            return facts;
        }
        Some(Ok(states)) => states,
    };
    if states.iter().any(|(_, state)| state != "UP") {
        facts.not_run = Some("not every server is UP to begin with".into());
        return facts;
    }
    let state_of = |states: &[(String, String)], node: &str| {
        states
            .iter()
            .find(|(server, _)| server == node)
            .map(|(_, state)| state.clone())
    };
    let candidate = nodes.iter().enumerate().find(|(_, node)| {
        node.answered().is_some_and(|s| {
            s.serving
                && s.cluster_status
                    .as_deref()
                    .is_none_or(|word| word == "Online")
        }) && state_of(states, &node.node).as_deref() == Some("UP")
    });
    let Some((index, node)) = candidate else {
        facts.not_run =
            Some("no node is Online, serving and UP at the balancer under its own name".into());
        return facts;
    };
    facts.node = node.node.clone();
    let timeout_arg = format!("{}", within.as_secs().max(1));
    let command = |verb: &str| infra.node_command(index, &[verb, "--timeout", &timeout_arg]);
    let (Some(offline), Some(online)) = (command("offline"), command("online")) else {
        facts.not_run = Some(format!(
            "the {} provider runs no command on a node (`pkgnode offline` drains one)",
            infra.info().provider
        ));
        return facts;
    };
    let command_timeout = within + Duration::from_secs(20);
    facts.offline = Some(run_admin(offline, command_timeout).await);
    let ping_url = format!("{}/__ping__", node.url.trim_end_matches('/'));

    // Out of rotation: the server's state leaves UP.
    let drained = Instant::now();
    let deadline = drained + within;
    loop {
        let ping = match client.get(&ping_url).send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) => Err(e.to_string()),
        };
        // The first failing answer is the one the health check had to see.
        if !matches!(facts.ping_while_drained, Some(Ok(code)) if code != 200) {
            facts.ping_while_drained = Some(ping);
        }
        if let Some(Ok(states)) = infra.balancer_states()
            && let Some(state) = state_of(&states, &facts.node)
        {
            let out = state != "UP";
            facts.state_while_drained = state;
            if out {
                facts.out_of_rotation_after_s = Some(drained.elapsed().as_secs_f64());
                break;
            }
        }
        // A drain that failed fails nothing: one look at the ping is enough to say so.
        if Instant::now() >= deadline || !matches!(facts.offline, Some(Ok(_))) {
            break;
        }
        tokio::time::sleep(POLL).await;
    }

    // Back in rotation: online again, and UP at the balancer.
    facts.online = Some(run_admin(online, command_timeout).await);
    let undrained = Instant::now();
    let deadline = undrained + within;
    loop {
        if let Some(Ok(states)) = infra.balancer_states()
            && state_of(&states, &facts.node).as_deref() == Some("UP")
        {
            facts.back_in_rotation_after_s = Some(undrained.elapsed().as_secs_f64());
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    facts
}

/// Runs an admin command to its end: what it printed, or why it failed.
async fn run_admin(
    command: Result<crate::infra::NodeCommand, crate::infra::InfraError>,
    timeout: Duration,
) -> Result<String, String> {
    let command = command.map_err(|e| e.to_string())?;
    let description = command.description.clone();
    let finished = tokio::task::spawn_blocking(move || command.run(timeout))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let said = |lines: &[String]| lines.join(" ").trim().to_string();
    if finished.exit_code == Some(0) {
        Ok(said(&finished.stdout))
    } else {
        Err(format!(
            "{description}: {}: {}",
            match finished.exit_code {
                Some(code) => format!("exit {code}"),
                None if finished.timed_out => format!("not done within {} s", timeout.as_secs()),
                None => "killed".into(),
            },
            // The error line, not the node's log lines before it.
            finished
                .stderr
                .iter()
                .rev()
                .find(|l| l.starts_with("pkgnode:"))
                .cloned()
                .unwrap_or_else(|| said(&finished.stderr))
        ))
    }
}
