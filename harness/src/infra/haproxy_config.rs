//! HAProxy's configuration and `show stat` parsing, shared by the providers that run it: round
//! robin with `/__ping__` health checks, and retries with redispatch so a request that finds a
//! dead node is re-sent to a live one (HAProxy re-sends only requests that are safe to repeat).
//! Response bodies are spliced (`option splice-response`): the kernel moves a package file from
//! the node's socket to the client's without copying it through HAProxy. On a 2-core machine
//! with the small corpus it took HAProxy from 158 to 94 µs a request and the gate's knee from
//! 12.9M to 21.7M installs a day; `splice-auto` gained nothing over no splicing under wrk.

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

pub fn config_text(layout: &Layout) -> String {
    let mut text = String::from("global\n    maxconn 4096\n");
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
         \x20   retry-on conn-failure empty-response response-timeout 503\n",
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
mod tests {
    use super::*;

    #[test]
    fn version_is_the_word_after_the_product() {
        assert_eq!(
            parse_version("HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/\n"),
            "2.6.12-1+deb12u4"
        );
    }

    #[test]
    fn config_lists_every_node_with_health_checks() {
        let servers = vec![
            ("node-1".to_string(), "127.0.0.11:4000".to_string()),
            ("node-2".to_string(), "127.0.0.12:4000".to_string()),
        ];
        let text = config_text(&Layout {
            bind: "127.0.0.1:5000",
            global: &["stats socket /w/haproxy.sock mode 600 level admin".into()],
            servers: &servers,
            server_options: " resolvers docker",
            tail: "resolvers docker\n    nameserver dns 127.0.0.11:53\n",
        });
        assert!(text.contains("    stats socket /w/haproxy.sock mode 600 level admin\n"));
        assert!(text.contains("bind 127.0.0.1:5000"));
        assert!(text.contains(
            "server node-2 127.0.0.12:4000 check inter 500ms fall 2 rise 1 resolvers docker\n"
        ));
        assert!(text.contains("retry-on conn-failure empty-response response-timeout 503"));
        assert!(text.contains("    option splice-response\n"));
        assert!(text.ends_with("nameserver dns 127.0.0.11:53\n"));
    }

    #[test]
    fn stat_csv_gives_the_node_servers() {
        let csv = "# pxname,svname,qcur,status\nlb,FRONTEND,,OPEN\nnodes,node-1,0,UP\n\
                   nodes,node-2,0,DOWN 1/2\nnodes,BACKEND,0,UP\n";
        assert_eq!(
            server_states(csv).unwrap(),
            [
                ("node-1".to_string(), "UP".to_string()),
                ("node-2".to_string(), "DOWN".to_string())
            ]
        );
    }

    /// A quoted field holding a comma does not shift the columns after it, and a trailing
    /// empty line (as `show stat` ends) is no row.
    #[test]
    fn stat_csv_fields_are_read_as_csv() {
        let csv = "# pxname,svname,check_desc,status,\n\
                   nodes,node-1,\"Layer7 check passed, code 200\",UP,\n\n";
        assert_eq!(
            server_states(csv).unwrap(),
            [("node-1".to_string(), "UP".to_string())]
        );
        assert_eq!(server_states("\n").unwrap_err(), "empty `show stat` answer");
        assert_eq!(
            server_states("# pxname,svname\nnodes,node-1\n").unwrap_err(),
            "`show stat` has no status column"
        );
    }
}
