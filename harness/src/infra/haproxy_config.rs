//! HAProxy's configuration and `show stat` parsing, shared by the providers that run it: round
//! robin with `/__ping__` health checks, and retries with redispatch so a request that finds a
//! dead node is re-sent to a live one. Only GET and HEAD are re-sent after they reached a node:
//! `retry-on` applies to every method unless `http-request disable-l7-retry` says otherwise
//! (HAProxy 2.6 manual, "retry-on"), and an upload re-sent after a 503 or a dropped connection
//! could be stored twice, or stored by a node whose answer the client never saw. A request that
//! could not be sent at all (`conn-failure`) is still re-sent, whatever its method.
//! Response bodies are spliced (`option splice-response`): the kernel moves a package file from
//! the node's socket to the client's without copying it through HAProxy. On a 2-core machine
//! with the small corpus it took HAProxy from 158 to 94 µs a request and the gate's knee from
//! 12.9M to 21.7M installs a day; `splice-auto` gained nothing over no splicing under wrk.
//! The splicing pipes hold 1 MiB (`tune.pipesize`, 64 KiB by default): a package file or a
//! `PACKAGES.rds` crosses in one or two splices instead of several. Against two nodes on the
//! small corpus's wrk mix (issue 25, 2 cores shared with builds) it took HAProxy from 132–143 to
//! 115–117 µs a request at the same or a higher rate. Tried and left out: `http-reuse always`
//! (the default `safe` already reuses server connections: 77 connects for 62,227 requests, no
//! gain measured, and a first request on a connection the server is closing would fail where
//! `safe` does not risk it), `nbthread 1` (5–11 % less CPU a request, 4–11 % fewer requests a
//! second), `tune.bufsize 65536` (20 % more CPU a request). Nothing is logged (no `log` line), so
//! logging costs nothing on the hot path.

/// The backend holding the nodes.
pub const BACKEND: &str = "nodes";

/// What differs between providers.
pub struct Layout<'a> {
    /// `bind` argument of the load-balancing frontend, e.g. `127.0.0.1:5000` or `:8080`.
    pub bind: &'a str,
    /// Extra lines for the `global` section (the stats socket), without indentation.
    pub global: &'a [String],
    /// (server name, `host:port`) for each node.
    pub servers: &'a [(String, String)],
    /// Appended to every `server` line (e.g. ` resolvers docker init-addr last,libc,none`).
    pub server_options: &'a str,
    /// Whole sections appended at the end (resolvers, a stats frontend).
    pub tail: &'a str,
}

/// The size of the pipes response bodies are spliced through (HAProxy's default is the
/// system's, 64 KiB). Where the kernel refuses it (an unprivileged user past
/// `fs.pipe-user-pages-soft`), HAProxy keeps the default size.
pub const PIPE_BYTES: u64 = 1024 * 1024;

/// Keeps every request but GET and HEAD (`METH_GET` matches both) out of the layer-7 retries:
/// such a request is re-sent only when its connection failed before it was sent.
pub const NO_REPLAYED_WRITES: &str = "http-request disable-l7-retry if !METH_GET !METH_HEAD";

/// The whole `haproxy.cfg`.
pub fn config_text(layout: &Layout) -> String {
    let mut text = format!("global\n    maxconn 4096\n    tune.pipesize {PIPE_BYTES}\n");
    for line in layout.global {
        text.push_str(&format!("    {line}\n"));
    }
    text.push_str(&format!(
        "\n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \x20   option http-keep-alive\n\
         \x20   option splice-response\n\
         \n\
         frontend lb\n\
         \x20   bind {bind}\n\
         \x20   default_backend {BACKEND}\n\
         \n\
         backend {BACKEND}\n\
         \x20   balance roundrobin\n\
         \x20   option httpchk GET /__ping__\n\
         \x20   http-check expect status 200\n\
         \x20   retries 3\n\
         \x20   option redispatch 1\n\
         \x20   retry-on conn-failure empty-response response-timeout 503\n\
         \x20   {NO_REPLAYED_WRITES}\n",
        bind = layout.bind,
    ));
    for (name, node) in layout.servers {
        text.push_str(&format!(
            "    server {name} {node} check inter 500ms fall 2 rise 1{}\n",
            layout.server_options
        ));
    }
    if !layout.tail.is_empty() {
        text.push('\n');
        text.push_str(layout.tail);
    }
    text
}

/// `show stat` CSV (or the stats page's `;csv`): (server name, status) for each node server.
pub fn server_states(csv_text: &str) -> Result<Vec<(String, String)>, String> {
    // The header row is `# pxname,svname,…`: without its marker it is an ordinary CSV header.
    let text = csv_text.trim_start();
    if text.is_empty() {
        return Err("empty `show stat` answer".into());
    }
    let text = text.strip_prefix("# ").unwrap_or(text);
    // Rows may differ in length between HAProxy versions (fields added at the end).
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let columns = reader
        .headers()
        .map_err(|e| format!("`show stat` header: {e}"))?
        .clone();
    let column = |name: &str| {
        columns
            .iter()
            .position(|c| c == name)
            .ok_or(format!("`show stat` has no {name} column"))
    };
    let (proxy, server, status) = (column("pxname")?, column("svname")?, column("status")?);
    let mut states = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| format!("`show stat` row: {e}"))?;
        if row.get(proxy) != Some(BACKEND) {
            continue;
        }
        let Some(name) = row
            .get(server)
            .filter(|name| !matches!(*name, "BACKEND" | "FRONTEND"))
        else {
            continue;
        };
        // "UP 1/2" while a check is in transition.
        let state = row.get(status).unwrap_or_default();
        let state = state.split_whitespace().next().unwrap_or_default();
        states.push((name.to_string(), state.to_string()));
    }
    Ok(states)
}

/// `HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/` → `2.6.12-1+deb12u4`.
pub fn parse_version(text: &str) -> String {
    let first = text.lines().next().unwrap_or_default().trim();
    first
        .strip_prefix("HAProxy version ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or(first)
        .to_string()
}

#[cfg(test)]
mod tests;
