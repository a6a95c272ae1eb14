//! The balancer configuration's tests: what it renders and that HAProxy accepts it.

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
    assert!(text.starts_with("global\n    maxconn 4096\n    tune.pipesize 1048576\n"));
    assert!(
        !text.contains("http-reuse"),
        "the default (safe) reuse: {text}"
    );
    assert!(text.ends_with("nameserver dns 127.0.0.11:53\n"));
}

fn two_nodes() -> String {
    let servers = vec![
        ("node-1".to_string(), "127.0.0.11:4000".to_string()),
        ("node-2".to_string(), "127.0.0.12:4000".to_string()),
    ];
    config_text(&Layout {
        bind: "127.0.0.1:5000",
        global: &[],
        servers: &servers,
        server_options: "",
        tail: "",
    })
}

#[test]
fn only_get_and_head_are_retried_after_they_reached_a_node() {
    let text = two_nodes();
    let backend = text
        .split("\nbackend nodes\n")
        .nth(1)
        .expect("a backend section");
    let retry_on = backend.find("retry-on ").expect("retry-on in the backend");
    let disable = backend
        .find("http-request disable-l7-retry if !METH_GET !METH_HEAD\n")
        .expect("non-idempotent methods kept out of the layer-7 retries");
    assert!(
        backend[retry_on..].contains(" 503") && disable > 0,
        "the 503 retry must come with the method guard:\n{text}"
    );
    // No other rule turns the retries back on for a method.
    assert_eq!(text.matches("disable-l7-retry").count(), 1, "{text}");
    assert!(!text.contains("unless METH"), "{text}");
}

/// HAProxy itself (2.6, installed by `.ci/install.sh`) accepts the generated file, guard
/// included: `haproxy -c` parses it and resolves the ACLs.
#[test]
fn haproxy_accepts_the_generated_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, two_nodes()).expect("write the config");
    let out = std::process::Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .expect("haproxy on PATH (installed by .ci/install.sh)");
    assert!(
        out.status.success(),
        "haproxy -c refused the config: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A stand-in node for the balancer test: answers `/__ping__` 200; every other request is
/// recorded (method) and then either answered 200 or, as a node killed while an upload is
/// in flight, read in full and its connection closed without an answer.
struct FakeNode {
    addr: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeNode {
    fn start(dies_mid_request: bool) -> FakeNode {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let (method, path) = {
                            let mut words = line.split_whitespace();
                            let method = words.next().unwrap_or_default().to_string();
                            (method, words.next().unwrap_or_default().to_string())
                        };
                        let mut length = 0usize;
                        loop {
                            let mut header = String::new();
                            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                                return;
                            }
                            if header.trim().is_empty() {
                                break;
                            }
                            if let Some((name, value)) = header.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        if path != "/__ping__" {
                            record.lock().expect("lock").push(method);
                            if dies_mid_request {
                                return; // the connection closes with no answer
                            }
                        }
                        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        FakeNode { addr, seen }
    }

    fn seen(&self, method: &str) -> usize {
        let seen = self.seen.lock().expect("lock");
        seen.iter().filter(|m| *m == method).count()
    }
}

/// Real HAProxy with `config` in front of a node that dies with each request in flight and a
/// healthy one; sends 6 POSTs and 6 GETs through it. Returns (POSTs the nodes received,
/// POSTs answered 2xx, GETs answered 2xx).
fn through_haproxy(config: impl Fn(&str) -> String) -> (usize, usize, usize) {
    let dying = FakeNode::start(true);
    let healthy = FakeNode::start(false);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let bind = format!("127.0.0.1:{port}");
    let servers = vec![
        ("node-1".to_string(), dying.addr.clone()),
        ("node-2".to_string(), healthy.addr.clone()),
    ];
    let text = config(&config_text(&Layout {
        bind: &bind,
        global: &[],
        servers: &servers,
        server_options: "",
        tail: "",
    }));
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, text).expect("write the config");
    let mut haproxy = std::process::Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("haproxy on PATH (installed by .ci/install.sh)");
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client");
    let url = format!("http://{bind}/upload/pypi/local");
    // Wait for the frontend itself (not a fixed sleep): the first answer of any kind.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while client
        .head(format!("http://{bind}/__ping__"))
        .send()
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "haproxy never listened on {bind}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let before = (dying.seen("POST"), healthy.seen("POST"));
    assert_eq!(before, (0, 0), "no POST before the test's own");
    let mut posts_ok = 0;
    let mut gets_ok = 0;
    // Uploads back to back: round robin alternates them between the two nodes (a
    // retry's redispatch moves on too), so the dying node takes some whatever the start.
    for i in 0..6 {
        let post = client.post(&url).body(format!("upload {i}")).send();
        posts_ok += usize::from(post.is_ok_and(|r| r.status().is_success()));
    }
    for i in 0..6 {
        let get = client
            .get(format!("http://{bind}/pypi/latest/simple/p{i}/"))
            .send();
        gets_ok += usize::from(get.is_ok_and(|r| r.status().is_success()));
    }
    let _ = haproxy.kill();
    let _ = haproxy.wait();
    (dying.seen("POST") + healthy.seen("POST"), posts_ok, gets_ok)
}

/// Item 8 of issue 22 on real HAProxy: a node that dies with each upload in flight. Every
/// upload reaches at most one node (the ones sent to the dying node fail to the client:
/// whether it stored them is the writer's *unknown*), while reads are still re-sent to the
/// healthy node. Without the guard the same balancer sends those uploads to a second node.
#[test]
fn an_upload_reaches_one_node_even_when_that_node_dies_mid_request() {
    let (received, posts_ok, gets_ok) = through_haproxy(|text| text.to_string());
    assert_eq!(received, 6, "each of 6 uploads reached exactly one node");
    assert!(
        posts_ok < 6,
        "the uploads the dying node took were not re-sent ({posts_ok} ok)"
    );
    assert_eq!(
        gets_ok, 6,
        "reads that met the dying node were re-sent to the other"
    );

    // Negative control: the same config without the guard replays uploads.
    let (received, posts_ok, _) =
        through_haproxy(|text| text.replace(&format!("    {NO_REPLAYED_WRITES}\n"), ""));
    assert!(
        received > 6,
        "without disable-l7-retry HAProxy re-sends uploads: {received} received for 6 sent"
    );
    assert_eq!(posts_ok, 6, "every upload 'succeeded' on its second node");
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
