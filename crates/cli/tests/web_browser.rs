//! The web application end to end in headless Chromium (Debian's
//! `chromium`, driven by playwright-core from tests/e2e): sign up, log in,
//! search and page, rate three movies and see "For you" change, log out,
//! 403 on admin pages for a user, an admin running a batch. Screenshots of
//! every page land in $MOVIEREC_E2E_SCREENSHOTS (default
//! target/tmp/e2e-screenshots) as the run's artifacts.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e")
}

/// Node, playwright-core and Chromium, or a message saying how to get them.
fn browser_tools() -> PathBuf {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium not found at {chromium}: `apt-get install chromium` (scripts/test.sh does), or set CHROMIUM"
    );
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node not found: `apt-get install nodejs npm` (scripts/test.sh does)"
    );
    let dir = e2e_dir();
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: `npm ci --prefix {}` (scripts/test.sh does)",
        dir.display()
    );
    dir
}

#[test]
fn a_person_uses_the_web_application_in_chromium() {
    let e2e = browser_tools();
    let work = workdir();
    let models = ("MOVIEREC_MODELS__ENABLED", "true".to_string());
    run_ok(
        movierec(work.path())
            .args(["import", "movielens"])
            .arg(movielens("ml-latest-small")),
    );
    run_ok(
        movierec(work.path())
            .args(["batch", "run"])
            .env(models.0, &models.1),
    );
    let password = "admin password 1";
    run_ok(
        movierec(work.path())
            .args(["admin", "create-user", "root", "--admin"])
            .env("MOVIEREC_PASSWORD", password),
    );
    let server = start(
        work.path(),
        &["serve"],
        &[
            models.clone(),
            ("MOVIEREC_SERVING__OPEN_RATING_API", "false".into()),
        ],
    );
    // Secure cookies: browsers accept them from http://localhost, as a
    // person trying the quick start would browse.
    let base = server.base.replace("127.0.0.1", "localhost");
    let shots = std::env::var_os("MOVIEREC_E2E_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-screenshots"));
    let _ = std::fs::remove_dir_all(&shots);
    let output = std::process::Command::new("timeout")
        .args(["600", "node", "web.mjs"])
        .current_dir(&e2e)
        .env("BASE_URL", &base)
        .env("ADMIN_USER", "root")
        .env("ADMIN_PASSWORD", password)
        .env("SCREENSHOT_DIR", &shots)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser scenario failed (screenshots in {}):\n{stdout}\n{stderr}",
        shots.display()
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap())
        .unwrap_or_else(|_| panic!("no report line: {stdout}"));
    assert_eq!(report["ok"], true);
    assert_eq!(
        report["steps"],
        serde_json::json!([
            "signed up",
            "logged in",
            "searched with filters and paged",
            "rated three movies",
            "For you changed",
            "403 on admin pages",
            "logged out",
            "admin ran a batch and saw it"
        ]),
        "every step ran"
    );
    let mut names: Vec<String> = std::fs::read_dir(&shots)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 14, "one screenshot per page: {names:?}");
    for name in &names {
        let bytes = std::fs::read(shots.join(name)).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000,
            "{name} is a real screenshot"
        );
    }
}
