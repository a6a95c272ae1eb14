//! Protocol details clients rely on: PEP 691 negotiation, PEP 503 redirects, ETag and Range,
//! snapshots by id and date, CRAN archive layout, authenticated repos and the ops endpoints.

use std::io::Read;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use reqwest::header::{ACCEPT, CONTENT_RANGE, ETAG, IF_NONE_MATCH, LOCATION, RANGE};
use sha2::{Digest, Sha256};

use crate::support::{self, NodeDir};

#[test]
fn pypi_and_cran_protocols() {
    let node = NodeDir::new("");
    node.standard_layout();
    node.admin(&[
        "create",
        "repo",
        "--name",
        "private",
        "--type",
        "python",
        "--authenticated",
    ]);
    node.admin(&["subscribe", "--repo", "private", "--source", "py"]);
    let work = tempfile::tempdir().unwrap();
    let wheel = support::mkpkg_padded(work.path(), &["wheel", "Big.Pkg", "1.0"], 1_000_000);
    let r1 = support::mkpkg(work.path(), &["rpkg", "rfoo", "1.0"]);
    let r2 = support::mkpkg(work.path(), &["rpkg", "rfoo", "1.10"]);
    for path in [&r1, &r2] {
        node.admin(&[
            "add",
            "--source",
            "rsrc",
            "--path",
            &path.display().to_string(),
        ]);
    }
    node.admin(&[
        "add",
        "--source",
        "py",
        "--path",
        &wheel.display().to_string(),
    ]);
    let served = node.serve();
    let base = &served.base;
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    assert_eq!(
        http.get(format!("{base}/__ping__"))
            .send()
            .unwrap()
            .status(),
        200
    );

    // PEP 503: non-normalized names redirect to the normalized page.
    let response = http
        .get(format!("{base}/pypi/latest/simple/Big.Pkg/"))
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(response.headers()[LOCATION], "/pypi/latest/simple/big-pkg/");
    let page = http
        .get(format!("{base}/pypi/latest/simple/big-pkg/"))
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    let etag = page.headers()[ETAG].clone();
    let html = page.text().unwrap();
    let sha = hex::encode(Sha256::digest(std::fs::read(&wheel).unwrap()));
    assert!(html.contains(&format!("#sha256={sha}")), "{html}");

    // PEP 691 JSON when asked, with the same files.
    let json: serde_json::Value = http
        .get(format!("{base}/pypi/latest/simple/big-pkg/"))
        .header(ACCEPT, "application/vnd.pypi.simple.v1+json")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(json["files"][0]["hashes"]["sha256"], sha.as_str());
    assert_eq!(json["files"][0]["requires-python"], ">=3.8");

    // Conditional and partial requests.
    let again = http
        .get(format!("{base}/pypi/latest/simple/big-pkg/"))
        .header(IF_NONE_MATCH, etag)
        .send()
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let file_url = format!("{base}/pypi/latest/packages/Big.Pkg-1.0-py3-none-any.whl");
    let whole = http.get(&file_url).send().unwrap().bytes().unwrap();
    assert!(whole.len() > 1_000_000);
    assert_eq!(hex::encode(Sha256::digest(&whole)), sha);
    let part = http
        .get(&file_url)
        .header(RANGE, "bytes=100-199")
        .send()
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()[CONTENT_RANGE].to_str().unwrap(),
        format!("bytes 100-199/{}", whole.len())
    );
    assert_eq!(part.bytes().unwrap(), whole.slice(100..200));
    let beyond = http
        .get(&file_url)
        .header(RANGE, format!("bytes={}-", whole.len()))
        .send()
        .unwrap();
    assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Snapshots: by date (today holds everything, long ago nothing), by id beyond the newest.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        http.get(format!("{base}/pypi/{today}/simple/big-pkg/"))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/pypi/2000-01-01/simple/big-pkg/"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(format!("{base}/pypi/99999/simple/big-pkg/"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(format!("{base}/pypi/yesterday/simple/"))
            .send()
            .unwrap()
            .status(),
        404
    );

    // CRAN: newest version in PACKAGES (R's numeric order: 1.10 > 1.0), older in the Archive.
    let packages = http
        .get(format!("{base}/cran/latest/src/contrib/PACKAGES"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        packages.contains("Package: rfoo\nVersion: 1.10\n"),
        "{packages}"
    );
    assert!(packages.contains("MD5sum: "), "{packages}");
    let gz = http
        .get(format!("{base}/cran/latest/src/contrib/PACKAGES.gz"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, packages);
    assert_eq!(
        http.get(format!("{base}/cran/latest/src/contrib/rfoo_1.10.tar.gz"))
            .send()
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/cran/latest/src/contrib/rfoo_1.0.tar.gz"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(format!(
            "{base}/cran/latest/src/contrib/Archive/rfoo/rfoo_1.0.tar.gz"
        ))
        .send()
        .unwrap()
        .status(),
        200
    );
    // A Python repo does not answer CRAN paths.
    assert_eq!(
        http.get(format!("{base}/pypi/latest/src/contrib/PACKAGES"))
            .send()
            .unwrap()
            .status(),
        404
    );

    // Authenticated repos need a repos:read token.
    let private = format!("{base}/private/latest/simple/big-pkg/");
    assert_eq!(http.get(&private).send().unwrap().status(), 401);
    let write_token = node.token("py");
    assert_eq!(
        http.get(&private)
            .basic_auth("__token__", Some(&write_token))
            .send()
            .unwrap()
            .status(),
        403
    );
    let read_token = node.admin(&[
        "create",
        "token",
        "--scope",
        "repos:read",
        "--repo",
        "private",
    ]);
    let read_token = read_token.lines().last().unwrap().trim();
    assert_eq!(
        http.get(&private)
            .basic_auth("__token__", Some(read_token))
            .send()
            .unwrap()
            .status(),
        200
    );

    // Download counts (one whole download above) and Prometheus metrics.
    let counts: serde_json::Value = http
        .get(format!("{base}/__api__/metrics/packages"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let big = counts
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["filename"] == "Big.Pkg-1.0-py3-none-any.whl")
        .expect("download counted");
    assert_eq!(big["downloads"], 1);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    // The whole answer parses as OpenMetrics: every harness reader depends on it.
    let samples = support::metric_samples(&metrics);
    let has = |name: &str, label: (&str, &str)| {
        samples.iter().any(|(sample, labels, _)| {
            sample == name
                && labels
                    .iter()
                    .any(|(l, v)| (l.as_str(), v.as_str()) == label)
        })
    };
    assert!(
        has(
            "pkgnode_http_requests_total",
            ("route", "/{repo}/{snapshot}/simple/{name}/")
        ),
        "{metrics}"
    );
    assert!(
        has("pkgnode_index_cache_total", ("result", "hit")),
        "{metrics}"
    );
    let repos: serde_json::Value = http
        .get(format!("{base}/__api__/repos"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(repos.as_array().unwrap().len(), 3);
}
