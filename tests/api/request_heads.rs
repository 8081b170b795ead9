//! Request heads that actix-http would refuse with a bare status of its own (too large, too many
//! header fields, an over-long request line): answered as problem+json like every refusal.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, spawn_app};

/// An answer read off the wire: status, lower-cased headers, body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `head` (and nothing else) on a new connection, as a hostile client would, and reads
/// the first answer.
async fn send_raw(app: &TestApp, head: String) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(head.as_bytes()).await;
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply).await;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = reply.split_once("\r\n\r\n").expect("a complete answer");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn get(path: &str, fields: &[(String, String)]) -> String {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in fields {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

fn assert_problem(answer: &Answer, status: u16, problem_type: &str) {
    assert_eq!(answer.status, status, "{:.200}", answer.body);
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json"),
        "{:?}",
        answer.headers
    );
    let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(body["type"], problem_type, "{body}");
    assert_eq!(body["status"], status);
    assert!(body["detail"].is_string());
    assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
    assert!(answer.header("x-request-id").is_some());
}

#[tokio::test]
async fn a_one_megabyte_header_is_a_431_problem() {
    let app = spawn_app().await;
    let big = vec![("X-Big".to_owned(), "a".repeat(1 << 20))];
    let answer = send_raw(&app, get("/health/live", &big)).await;
    assert_problem(&answer, 431, "/problems/request-header-too-large");
}

#[tokio::test]
async fn too_many_header_fields_are_a_431_problem() {
    let app = spawn_app().await;
    // 200 short fields: far below any byte limit, above actix-http's 96 fields.
    let many: Vec<_> = (0..200)
        .map(|i| (format!("X-F{i}"), "v".to_owned()))
        .collect();
    let answer = send_raw(&app, get("/health/live", &many)).await;
    assert_problem(&answer, 431, "/problems/request-header-too-large");
}

#[tokio::test]
async fn an_overlong_request_line_is_a_414_problem() {
    let app = spawn_app().await;
    let path = format!("/api/v1/{}", "a".repeat(20 * 1024));
    let answer = send_raw(&app, get(&path, &[])).await;
    assert_problem(&answer, 414, "/problems/uri-too-long");
}

#[tokio::test]
async fn heads_within_the_limits_are_served_as_before() {
    let app = spawn_app().await;
    let fields: Vec<_> = (0..60)
        .map(|i| (format!("X-F{i}"), "v".repeat(100)))
        .collect();
    let answer = send_raw(&app, get("/health/live", &fields)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    // And over HTTP as usual, kept-alive connections included.
    for _ in 0..3 {
        assert_eq!(app.get("/health/live").await.status(), 200);
    }
}
