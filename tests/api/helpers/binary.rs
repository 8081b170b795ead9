//! The real binary as a child process, for what only a process can show: a SIGKILL mid-load,
//! a graceful stop on SIGTERM.

use std::time::Duration;

use super::{TestApp, poll};

/// The real binary serving this test's database (`serve --role api`, test settings) on `port`.
pub struct Server(std::process::Child);

impl Server {
    pub async fn start(app: &TestApp, port: u16) -> Self {
        Self::start_with(app, port, &[]).await
    }

    /// As [`Server::start`], with settings of its own (`CCS__…` variables).
    pub async fn start_with(app: &TestApp, port: u16, env: &[(&str, &str)]) -> Self {
        use secrecy::ExposeSecret;
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_currency-conversion"))
            .args(["serve", "--role", "api"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .env("APP_ENV", "test")
            .env("DATABASE_URL", app.settings.database.url.expose_secret())
            .env("REDIS_URL", app.settings.redis.url.expose_secret())
            .env("CCS__REDIS__KEY_PREFIX", &app.settings.redis.key_prefix)
            .env("CCS__SERVER__PORT", port.to_string())
            .env("CCS__LIMITS__REQUESTS_PER_MINUTE", "1000000")
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the binary starts");
        let client = reqwest::Client::new();
        poll(Duration::from_secs(30), "the server to answer", || {
            let req = client.get(format!("http://127.0.0.1:{port}/health/live"));
            async move { req.send().await.is_ok_and(|r| r.status() == 200) }
        })
        .await;
        Self(child)
    }

    /// SIGKILL: no shutdown, no flush, whatever was in flight is cut.
    pub fn kill_9(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// SIGTERM, as a service manager stops it, and waits until the process has exited;
    /// returns its exit status.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM not sent");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not stop within 30 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
