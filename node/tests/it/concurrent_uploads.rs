//! Concurrent writers on the embedded default (issue 10 defect 7): parallel uploads to one SQLite
//! node wait their turn; none fails with "database is locked", and every one is listed.

use std::sync::{Arc, Barrier};

use reqwest::blocking::multipart::{Form, Part};

use crate::support::{self, NodeDir};

const UPLOADS: usize = 16;

#[test]
fn issue_10_parallel_uploads_to_a_sqlite_node_all_succeed() {
    let node = NodeDir::new("");
    node.standard_layout();
    let token = node.token("py");
    let work = tempfile::tempdir().unwrap();
    let wheels: Vec<_> = (0..UPLOADS)
        .map(|i| support::mkpkg(work.path(), &["wheel", &format!("par-{i}"), "1.0"]))
        .collect();
    let served = node.serve();
    let start = Arc::new(Barrier::new(UPLOADS));
    let uploads: Vec<_> = wheels
        .into_iter()
        .map(|wheel| {
            let (base, token, start) = (served.base.clone(), token.clone(), start.clone());
            std::thread::spawn(move || {
                let filename = wheel.file_name().unwrap().to_string_lossy().into_owned();
                let form = Form::new().text(":action", "file_upload").part(
                    "content",
                    Part::bytes(std::fs::read(&wheel).unwrap()).file_name(filename.clone()),
                );
                let request = reqwest::blocking::Client::new()
                    .post(format!("{base}/upload/pypi/py"))
                    .basic_auth("__token__", Some(&token))
                    .multipart(form);
                start.wait();
                let response = request.send().expect("upload request");
                (
                    filename,
                    response.status().as_u16(),
                    response.text().unwrap_or_default(),
                )
            })
        })
        .collect();
    let answers: Vec<_> = uploads.into_iter().map(|t| t.join().unwrap()).collect();
    let failed: Vec<_> = answers
        .iter()
        .filter(|(_, status, _)| *status != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "uploads failed: {failed:?}\n{}",
        node.log()
    );

    let index = reqwest::blocking::get(format!("{}/pypi/latest/simple/", served.base))
        .unwrap()
        .text()
        .unwrap();
    for i in 0..UPLOADS {
        assert!(
            index.contains(&format!(">par-{i}<")),
            "par-{i} missing from:\n{index}"
        );
    }
    let listed = node.admin(&["list", "packages", "--source", "py"]);
    assert_eq!(listed.lines().count(), UPLOADS, "{listed}");
}
