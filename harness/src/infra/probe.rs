//! Readiness probes and port choice, shared by the providers: a minimal blocking HTTP/1.0 GET
//! over `std::net`, so a provider works from any thread (a blocking reqwest client panics inside an async context, and
//! `control` may be called from one).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
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

/// `GET path` with every step bounded by `timeout`.
pub fn get(address: SocketAddr, path: &str, timeout: Duration) -> Result<Response, String> {
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| format!("connect {address}: {e}"))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    // HTTP/1.0 so the answer is neither chunked nor kept alive.
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {address}\r\nUser-Agent: harness-local-infra\r\n\r\n"
    )
    .map_err(|e| format!("send to {address}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read from {address}: {e}"))?;
    parse(&raw).ok_or_else(|| {
        format!(
            "malformed HTTP answer from {address}: {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        )
    })
}

fn parse(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = lines.any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Some(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
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
    fn parses_plain_and_chunked_answers() {
        let plain = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nOK\n").unwrap();
        assert_eq!((plain.status, plain.body.as_str()), (200, "OK\n"));
        let chunked = parse(
            b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((chunked.status, chunked.body.as_str()), (503, "abcde"));
        assert!(parse(b"garbage").is_none());
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
