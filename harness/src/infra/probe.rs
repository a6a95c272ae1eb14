//! Readiness probes and port choice, shared by the providers. A probe is a blocking GET that works
//! from any thread: `reqwest`'s blocking client refuses to run (or be dropped) on a thread that is
//! inside a tokio runtime, and `control` may be called from one, so each probe runs the shared
//! client on a short-lived thread of its own.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::sync::OnceLock;
use std::time::Duration;

/// A port that nobody listens on right now on 127.0.0.1.
pub fn free_port() -> Result<u16, std::io::Error> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// One port that is free on every one of `addresses` (each node gets its own loopback address
/// and they all share the port, like a real cluster).
pub fn free_port_on(addresses: &[IpAddr]) -> Result<u16, std::io::Error> {
    let Some(first) = addresses.first() else {
        return free_port();
    };
    let mut last_error = None;
    for _ in 0..50 {
        let held = TcpListener::bind((*first, 0))?;
        let port = held.local_addr()?.port();
        let others: Result<Vec<TcpListener>, _> = addresses[1..]
            .iter()
            .map(|address| TcpListener::bind((*address, port)))
            .collect();
        match others {
            Ok(_) => return Ok(port),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("no common free port")))
}

/// A response: status and body text.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// `GET path` with the whole exchange bounded by `timeout`.
pub fn get(address: SocketAddr, path: &str, timeout: Duration) -> Result<Response, String> {
    let url = format!("http://{address}{path}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let response = client()?
                    .get(&url)
                    .timeout(timeout)
                    .send()
                    .map_err(|e| format!("GET {url}: {e}"))?;
                let status = response.status().as_u16();
                let body = response
                    .text()
                    .map_err(|e| format!("read from {address}: {e}"))?;
                Ok(Response { status, body })
            })
            .join()
            .unwrap_or_else(|_| Err(format!("GET {url}: the probe thread panicked")))
    })
}

/// The one blocking client: never dropped, so never dropped inside a runtime. Built on a probe
/// thread (outside any runtime) the first time.
fn client() -> Result<&'static reqwest::blocking::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::blocking::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::blocking::Client::builder()
                .user_agent("harness-local-infra")
                .no_proxy()
                // Probes ask for one answer each: no idle connection to a node that may be killed.
                .pool_max_idle_per_host(0)
                .build()
                .map_err(|e| format!("HTTP client: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Whether `GET /__ping__` answers 200.
pub fn ping(address: SocketAddr) -> Result<bool, String> {
    let response = get(address, "/__ping__", Duration::from_secs(2))?;
    if response.status == 200 {
        Ok(true)
    } else {
        Err(format!("/__ping__ answered {}", response.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gets_status_and_body_and_bounds_a_silent_server() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut answered, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = answered.read(&mut request).unwrap();
            answered
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
                .unwrap();
            // The next connection is accepted and never answered.
            let (silent, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_secs(2));
            drop(silent);
        });
        let response = get(address, "/__ping__", Duration::from_secs(2)).unwrap();
        assert_eq!((response.status, response.body.as_str()), (503, "busy"));
        let started = std::time::Instant::now();
        let error = get(address, "/", Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{error}");
        server.join().unwrap();
    }

    #[tokio::test]
    async fn works_from_inside_a_runtime() {
        let error = get(
            "127.0.0.1:9".parse().unwrap(),
            "/",
            Duration::from_millis(500),
        )
        .expect_err("nothing listens on port 9");
        assert!(error.contains("127.0.0.1:9"), "{error}");
    }

    #[test]
    fn a_shared_port_is_free_on_every_address() {
        let addresses: Vec<IpAddr> = (11..14)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
            .collect();
        let port = free_port_on(&addresses).unwrap();
        for address in addresses {
            TcpListener::bind((address, port)).unwrap();
        }
    }
}
