//! What the real clients ask the node for, recorded by a proxy between them and the node: R
//! 4.x reads `PACKAGES.rds` (one index request, no `PACKAGES.gz`) and then the tarballs, and
//! `readRDS` gives the index matrix R expects; pip and uv ask for the project page and then
//! the file, for each package of the closure. The load generator replays these sequences.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::support::{self, NodeDir};

/// A TCP proxy to `upstream` that records the request line of every HTTP request it carries.
/// Clients send requests without bodies here (GETs), one after another on a connection.
struct Recorder {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn to(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (Ok(mut to_client), Ok(mut from_server)) =
                    (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(Shutdown::Both);
                });
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(client);
                    let mut server = server;
                    let mut line = String::new();
                    let mut at_start = true;
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if at_start {
                            log.lock().unwrap().push(line.trim_end().to_string());
                        } else if line.to_ascii_lowercase().starts_with("range:") {
                            // Ranged reads are part of what a client asks for.
                            if let Some(last) = log.lock().unwrap().last_mut() {
                                last.push_str(&format!(" [{}]", line.trim_end()));
                            }
                        }
                        // A blank line ends the headers: the next line starts a request.
                        at_start = line == "\r\n" || line == "\n";
                        if server.write_all(line.as_bytes()).is_err() {
                            break;
                        }
                        line.clear();
                    }
                    let _ = server.shutdown(Shutdown::Both);
                });
            }
        });
        Recorder { port, seen }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The paths requested since the last call, in order: a GET as its path, another method
    /// as `METHOD path`, a ranged request followed by ` [Range: …]`.
    fn take(&self) -> Vec<String> {
        let mut seen = self.seen.lock().unwrap();
        seen.drain(..)
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let method = words.next()?;
                let path = words.next()?;
                let request = match method {
                    "GET" => path.to_string(),
                    other => format!("{other} {path}"),
                };
                Some(match line.find(" [") {
                    Some(at) => format!("{request}{}", &line[at..]),
                    None => request,
                })
            })
            .collect()
    }
}

fn port_of(base: &str) -> u16 {
    base.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("base URL with a port")
}

fn rscript(script: &str) -> String {
    let out = Command::new("Rscript")
        .args(["-e", script])
        .output()
        .expect("Rscript is not installed: run .ci/install.sh");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "Rscript failed: {printed}");
    printed
}

fn add_r(node: &NodeDir, pkgs: &Path) {
    let rdep = support::mkpkg(pkgs, &["rpkg", "rdep", "1.0"]);
    let old = support::mkpkg(pkgs, &["rpkg", "rtop", "0.1-0", "rdep"]);
    let rtop = support::mkpkg(pkgs, &["rpkg", "rtop", "0.1-1", "rdep"]);
    node.admin(&[
        "add",
        "--source",
        "rsrc",
        "--path",
        &rdep.display().to_string(),
        &old.display().to_string(),
        &rtop.display().to_string(),
    ]);
}

#[test]
fn r_reads_packages_rds_with_one_index_request() {
    let node = NodeDir::new("");
    node.standard_layout();
    let served = node.serve();
    let work = tempfile::tempdir().unwrap();
    add_r(&node, &work.path().join("pkgs"));
    let proxy = Recorder::to(port_of(&served.base));
    let repos = format!("{}/cran/latest", proxy.base());

    // The matrix R reads: the newest version of each package, its columns, NA where a field
    // is absent (no package here has LinkingTo).
    let printed = rscript(&format!(
        "f <- tempfile(); download.file('{repos}/src/contrib/PACKAGES.rds', f, quiet = TRUE, mode = 'wb'); \
         x <- readRDS(f); stopifnot(is.matrix(x), is.character(x)); \
         cat(sort(paste(x[, 'Package'], x[, 'Version'])), sep = '\\n'); \
         cat('imports:', x[x[, 'Package'] == 'rtop', 'Imports'], '\\n'); \
         cat('linkingto-na:', all(is.na(x[, 'LinkingTo'])), '\\n'); \
         cat('md5:', nchar(x[1, 'MD5sum']), '\\n')"
    ));
    assert!(
        printed.contains("rdep 1.0\nrtop 0.1-1\n"),
        "R printed: {printed}"
    );
    assert!(printed.contains("imports: rdep"), "R printed: {printed}");
    assert!(
        printed.contains("linkingto-na: TRUE"),
        "R printed: {printed}"
    );
    assert!(printed.contains("md5: 32"), "R printed: {printed}");
    proxy.take();

    // install.packages in a fresh session: one index request, PACKAGES.rds, then the tarballs.
    let lib = work.path().join("rlib");
    std::fs::create_dir_all(&lib).unwrap();
    rscript(&format!(
        "options(warn = 2); install.packages('rtop', repos = '{repos}', lib = '{lib}', quiet = TRUE); \
         library(rtop, lib.loc = '{lib}')",
        lib = lib.display()
    ));
    let requests = proxy.take();
    assert_eq!(
        requests,
        [
            "/cran/latest/src/contrib/PACKAGES.rds",
            "/cran/latest/src/contrib/rdep_1.0.tar.gz",
            "/cran/latest/src/contrib/rtop_0.1-1.tar.gz",
        ],
        "R asked for {requests:?}"
    );

    // Negative control: a repository that serves no PACKAGES.rds (the Python one answers 404
    // under src/contrib). R falls back to PACKAGES.gz, then PACKAGES, and the proxy sees all
    // three: the one-request sequence above is R's choice, not the recorder missing requests.
    rscript(&format!(
        "x <- available.packages(repos = '{}/pypi/latest'); cat(nrow(x), '\\n')",
        proxy.base()
    ));
    assert_eq!(
        proxy.take(),
        [
            "/pypi/latest/src/contrib/PACKAGES.rds",
            "/pypi/latest/src/contrib/PACKAGES.gz",
            "/pypi/latest/src/contrib/PACKAGES",
        ]
    );
}

#[test]
fn pip_and_uv_ask_for_the_page_then_the_file_of_each_package() {
    let node = NodeDir::new("");
    node.standard_layout();
    let token = node.token("py");
    let served = node.serve();
    let work = tempfile::tempdir().unwrap();
    let pkgs = work.path().join("pkgs");
    let dep = support::mkpkg(&pkgs, &["wheel", "alpha-lib", "1.0"]);
    let top = support::mkpkg(&pkgs, &["wheel", "beta", "1.0", "alpha-lib>=1.0"]);
    let (ok, out) = support::twine_upload(&served.base, "py", &token, &[&dep, &top]);
    assert!(ok, "twine upload failed: {out}");
    let proxy = Recorder::to(port_of(&served.base));
    let index = format!("{}/pypi/latest/simple/", proxy.base());
    let expected = [
        "/pypi/latest/simple/beta/",
        "/pypi/latest/packages/beta-1.0-py3-none-any.whl",
        "/pypi/latest/simple/alpha-lib/",
        "/pypi/latest/packages/alpha_lib-1.0-py3-none-any.whl",
    ];

    let (ok, out) = support::pip_install(&index, &work.path().join("pip"), "beta");
    assert!(ok, "pip install failed: {out}");
    assert_eq!(proxy.take(), expected, "pip");

    let target = work.path().join("uv").display().to_string();
    let (ok, out) = support::client(
        "uv",
        &[
            "pip",
            "install",
            "--python",
            "python3",
            "--target",
            &target,
            "--index-url",
            &index,
            "beta",
        ],
    );
    assert!(ok, "uv pip install failed: {out}");
    let uv = proxy.take();
    eprintln!("uv asked for: {uv:#?}");
    // uv reads each page once and each wheel's metadata before it downloads the wheel: a
    // HEAD (size, range support) and a ranged GET of the zip's end, then the whole file once.
    // The generator replays pip's sequence; uv's metadata reads are extra requests per wheel.
    for path in expected {
        let whole = uv.iter().filter(|r| r.as_str() == path).count();
        assert_eq!(whole, 1, "uv asked for {path} {whole} times whole: {uv:#?}");
        if path.ends_with(".whl") {
            let ranged = uv
                .iter()
                .filter(|r| r.starts_with(&format!("{path} [Range: bytes=")))
                .count();
            assert!(ranged >= 1, "uv read no range of {path}: {uv:#?}");
        }
    }
    let known = |r: &&String| {
        expected
            .iter()
            .any(|p| r.starts_with(p) || r.starts_with(&format!("HEAD {p}")))
    };
    assert_eq!(
        uv.iter().filter(known).count(),
        uv.len(),
        "uv asked for something else: {uv:#?}"
    );
}
