//! The console's side of the harness: users for an ingest config (hashed by the real
//! `ingest hash-password`), and a small JSON client that keeps a session cookie and sends its
//! CSRF token, as the console page does.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::binary;

/// The argon2 hash `ingest hash-password` prints for `password`.
pub fn hash_password(password: &str) -> String {
    let mut child = Command::new(binary("ingest"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ingest hash-password");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write the password");
    let out = child.wait_with_output().expect("ingest hash-password");
    assert!(out.status.success(), "ingest hash-password failed");
    String::from_utf8(out.stdout).expect("utf-8").trim().to_string()
}

/// `[[console.user]]` entries for (name, role, password).
pub fn users_config(users: &[(&str, &str, &str)]) -> String {
    users
        .iter()
        .map(|(name, role, password)| {
            format!(
                "[[console.user]]\nname = \"{name}\"\nrole = \"{role}\"\npassword_hash = \"{}\"\n\n",
                hash_password(password)
            )
        })
        .collect()
}

/// An answer: the status and the body as JSON (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub set_cookie: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ConsoleClient {
    pub base: String,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub token: Option<String>,
}

impl ConsoleClient {
    pub fn new(base: &str) -> ConsoleClient {
        ConsoleClient { base: base.trim_end_matches('/').to_string(), ..ConsoleClient::default() }
    }

    pub fn with_token(base: &str, token: &str) -> ConsoleClient {
        ConsoleClient { token: Some(token.to_string()), ..ConsoleClient::new(base) }
    }

    /// Logs in; on success keeps the session cookie and CSRF token.
    pub fn login(&mut self, user: &str, password: &str) -> Answer {
        let a = self.send(
            "POST",
            "/api/v1/login",
            Some(serde_json::json!({ "user": user, "password": password })),
        );
        if a.status == 200 {
            let cookie = a.set_cookie.clone().expect("a session cookie");
            self.cookie = Some(cookie.split(';').next().unwrap_or_default().to_string());
            self.csrf = a.body["csrf"].as_str().map(String::from);
        }
        a
    }

    pub fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> Answer {
        self.send("POST", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Answer {
        self.send("DELETE", path, None)
    }

    /// The same session without its CSRF token: what a cross-site form would send.
    pub fn without_csrf(&self) -> ConsoleClient {
        ConsoleClient { csrf: None, ..self.clone() }
    }

    pub fn send(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let mut req = ureq::request(method, &format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.set("Cookie", c);
        }
        if let Some(t) = &self.csrf {
            req = req.set("X-CSRF-Token", t);
        }
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(&b.to_string()),
            None => req.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let set_cookie = response.header("set-cookie").map(String::from);
        let text = response.into_string().unwrap_or_default();
        Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), set_cookie }
    }
}
