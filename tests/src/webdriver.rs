//! A minimal W3C WebDriver client for the console's browser test: a real `chromedriver` on a
//! free loopback port driving headless Chromium (Debian's `chromium` and `chromium-driver`).
//!
//! - [`Browser::start`] starts chromedriver (a [`Proc`], killed on drop) and opens a session
//!   with headless Chromium whose profile lives in the test's temporary folder; dropping the
//!   [`Browser`] ends the session (which closes Chromium) and then kills chromedriver.
//! - [`Browser::goto`], [`Browser::find`], [`Element::click`], [`Element::send_keys`],
//!   [`Element::text`], [`Browser::screenshot`]: the commands the tests need, over plain HTTP
//!   with `ureq` and JSON.
//! - [`Browser::wait_until`]: polls a check until it answers, treating "no such element" and
//!   "stale element" as "not yet" (the console re-renders rows), and on timeout panics with the
//!   text the page shows.
//!
//! Chromium is kept off the network: every host name except `localhost` resolves to nothing and
//! its background services (updates, sync, safe browsing) are off; tests load 127.0.0.1 only.

use std::fmt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{find_program, free_port, wait_for, wait_for_port, Proc};

/// The key under which WebDriver names an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where CI gets the browser and its driver from.
const INSTALL: &str = "apt-get install -y chromium chromium-driver";

/// An error answered by chromedriver (`{"value": {"error", "message"}}`) or by the transport.
#[derive(Debug, Clone)]
pub struct WdError {
    /// The HTTP status, 0 when chromedriver could not be reached.
    pub status: u16,
    /// The WebDriver error code, e.g. `no such element`.
    pub error: String,
    pub message: String,
}

impl WdError {
    /// Errors that mean "not there yet" while the page is still changing.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.error.as_str(),
            "no such element"
                | "stale element reference"
                | "element not interactable"
                | "element click intercepted"
                | "detached shadow root"
        )
    }
}

impl fmt::Display for WdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.message.lines().next().unwrap_or_default();
        write!(f, "webdriver {}: {} ({first})", self.status, self.error)
    }
}

impl std::error::Error for WdError {}

pub type WdResult<T> = Result<T, WdError>;

/// Options for [`Browser::start_with`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The window size in CSS pixels.
    pub width: u32,
    pub height: u32,
    /// The browser's UI language (`navigator.language`), e.g. `en-US` or `zh-CN`.
    pub lang: String,
}

impl Default for Options {
    fn default() -> Self {
        Options { width: 1280, height: 900, lang: "en-US".into() }
    }
}

/// One chromedriver process with one headless Chromium session.
pub struct Browser {
    session: String,
    base: String,
    agent: ureq::Agent,
    // Dropped after the session has been deleted in `Drop`.
    pub driver: Proc,
}

impl Browser {
    /// Starts chromedriver and headless Chromium (1280×900, English) with its profile in `dir`.
    /// Panics with the install command when either is missing.
    pub fn start(dir: &Path) -> Browser {
        Browser::start_with(dir, Options::default())
    }

    pub fn start_with(dir: &Path, options: Options) -> Browser {
        let chromium = find_program("chromium", INSTALL);
        let chromedriver = find_program("chromedriver", INSTALL);
        let port = free_port();
        let mut cmd = Command::new(chromedriver);
        cmd.arg(format!("--port={port}"));
        let driver = Proc::spawn("chromedriver", cmd, dir);
        wait_for_port(port, "chromedriver to listen");
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(10))
            .timeout(Duration::from_secs(180))
            .build();
        let base = format!("http://127.0.0.1:{port}");
        wait_for(Duration::from_secs(30), "chromedriver to be ready", || {
            let status = request(&agent, "GET", &format!("{base}/status"), None).ok()?;
            status["ready"].as_bool().unwrap_or(false).then_some(())
        });

        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile).expect("chromium profile folder");
        let args = chromium_args(&options, &profile);
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": args,
                // `--lang` alone does not reach `navigator.language` in headless mode.
                "prefs": {"intl.accept_languages": options.lang},
            },
        }}});
        let mut browser = Browser { session: String::new(), base, agent, driver };
        let created = browser.command("POST", "/session", Some(capabilities)).unwrap_or_else(|e| {
            panic!("chromedriver could not start chromium: {e}\n{}", browser.driver.output())
        });
        browser.session = created["sessionId"].as_str().expect("a session id").to_string();
        browser
    }

    /// Sends one command; `path` is relative to the driver (`/session/...`).
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> WdResult<Value> {
        request(&self.agent, method, &format!("{}{path}", self.base), body)
    }

    /// Sends one command of this session; `path` is relative to `/session/{id}`.
    fn session_command(&self, method: &str, path: &str, body: Option<Value>) -> WdResult<Value> {
        self.command(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Loads `url` and waits for its `load` event.
    pub fn goto(&self, url: &str) -> WdResult<()> {
        self.session_command("POST", "/url", Some(json!({ "url": url }))).map(drop)
    }

    pub fn current_url(&self) -> WdResult<String> {
        Ok(self.session_command("GET", "/url", None)?.as_str().unwrap_or_default().to_string())
    }

    pub fn title(&self) -> WdResult<String> {
        Ok(self.session_command("GET", "/title", None)?.as_str().unwrap_or_default().to_string())
    }

    /// The first element matching the CSS selector (error `no such element` if none).
    pub fn find(&self, css: &str) -> WdResult<Element<'_>> {
        let v = self.session_command("POST", "/element", Some(by_css(css)))?;
        Ok(self.element(&v))
    }

    /// Every element matching the CSS selector, in document order.
    pub fn find_all(&self, css: &str) -> WdResult<Vec<Element<'_>>> {
        let v = self.session_command("POST", "/elements", Some(by_css(css)))?;
        Ok(v.as_array().map(|a| a.iter().map(|e| self.element(e)).collect()).unwrap_or_default())
    }

    fn element(&self, v: &Value) -> Element<'_> {
        Element { browser: self, id: v[ELEMENT].as_str().unwrap_or_default().to_string() }
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page and returns its
    /// result.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> WdResult<Value> {
        self.session_command("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
    }

    /// The page's visible text, for failure messages (empty when it cannot be read).
    pub fn page_text(&self) -> String {
        self.execute("return document.body ? document.body.innerText : ''", vec![])
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> WdResult<Vec<u8>> {
        let v = self.session_command("GET", "/screenshot", None)?;
        base64_decode(v.as_str().unwrap_or_default()).ok_or_else(|| WdError {
            status: 200,
            error: "bad screenshot".into(),
            message: "the screenshot was not valid base64".into(),
        })
    }

    pub fn save_screenshot(&self, path: &Path) -> WdResult<()> {
        let png = self.screenshot()?;
        std::fs::write(path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        Ok(())
    }

    /// Resizes the window (outer size, in CSS pixels).
    pub fn set_window_size(&self, width: u32, height: u32) -> WdResult<()> {
        self.session_command("POST", "/window/rect", Some(json!({ "width": width, "height": height })))
            .map(drop)
    }

    /// Polls `check` every 100 ms until it gives `Some`, treating transient errors (element
    /// not there yet, or replaced) as `None`. Panics after `limit` with `what`, the last
    /// error and the text the page shows; panics at once on any other error.
    pub fn wait_until<T>(
        &self,
        limit: Duration,
        what: &str,
        mut check: impl FnMut(&Browser) -> WdResult<Option<T>>,
    ) -> T {
        let deadline = Instant::now() + limit;
        let mut last: Option<WdError> = None;
        loop {
            match check(self) {
                Ok(Some(v)) => return v,
                Ok(None) => {}
                Err(e) if e.is_transient() => last = Some(e),
                Err(e) => panic!("while waiting for {what}: {e}\nthe page shows:\n{}", self.page_text()),
            }
            if Instant::now() > deadline {
                let last = last.map(|e| format!(" (last: {e})")).unwrap_or_default();
                let text: String = self.page_text().chars().take(3000).collect();
                panic!("timed out after {limit:?} waiting for {what}{last}; the page shows:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until an element matching `css` is present and displayed, and returns it.
    pub fn wait_for(&self, css: &str, limit: Duration) -> Element<'_> {
        let id = self.wait_until(limit, &format!("`{css}` to be displayed"), |b| {
            let e = b.find(css)?;
            Ok(e.is_displayed()?.then_some(e.id))
        });
        Element { browser: self, id }
    }

    /// Waits until the text of the first element matching `css` contains `needle`.
    pub fn wait_for_text(&self, css: &str, needle: &str, limit: Duration) -> String {
        self.wait_until(limit, &format!("`{css}` to show {needle:?}"), |b| {
            let text = b.find(css)?.text()?;
            Ok(text.contains(needle).then_some(text))
        })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Closes Chromium; chromedriver itself is killed when `driver` is dropped.
            let _ = self.session_command("DELETE", "", None);
        }
    }
}

/// A reference to an element of the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    pub id: String,
}

impl<'a> Element<'a> {
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> WdResult<Value> {
        self.browser.session_command(method, &format!("/element/{}{path}", self.id), body)
    }

    pub fn click(&self) -> WdResult<()> {
        self.command("POST", "/click", Some(json!({}))).map(drop)
    }

    /// Types `text` into the element (which gets the focus first).
    pub fn send_keys(&self, text: &str) -> WdResult<()> {
        self.command("POST", "/value", Some(json!({ "text": text }))).map(drop)
    }

    pub fn clear(&self) -> WdResult<()> {
        self.command("POST", "/clear", Some(json!({}))).map(drop)
    }

    /// The rendered text, as a user sees it.
    pub fn text(&self) -> WdResult<String> {
        Ok(self.command("GET", "/text", None)?.as_str().unwrap_or_default().to_string())
    }

    /// The attribute's value, `None` when the element has no such attribute.
    pub fn attribute(&self, name: &str) -> WdResult<Option<String>> {
        Ok(self.command("GET", &format!("/attribute/{name}"), None)?.as_str().map(str::to_string))
    }

    pub fn is_displayed(&self) -> WdResult<bool> {
        Ok(self.command("GET", "/displayed", None)?.as_bool().unwrap_or(false))
    }

    pub fn is_enabled(&self) -> WdResult<bool> {
        Ok(self.command("GET", "/enabled", None)?.as_bool().unwrap_or(false))
    }

    /// The first descendant matching `css`.
    pub fn find(&self, css: &str) -> WdResult<Element<'a>> {
        let v = self.command("POST", "/element", Some(by_css(css)))?;
        Ok(self.browser.element(&v))
    }

    pub fn find_all(&self, css: &str) -> WdResult<Vec<Element<'a>>> {
        let v = self.command("POST", "/elements", Some(by_css(css)))?;
        Ok(v.as_array().map(|a| a.iter().map(|e| self.browser.element(e)).collect()).unwrap_or_default())
    }

    /// The element as an argument of [`Browser::execute`].
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT: self.id })
    }
}

fn by_css(css: &str) -> Value {
    json!({ "using": "css selector", "value": css })
}

/// Headless, sandbox-free (tests may run as root in containers), and off the network.
fn chromium_args(options: &Options, profile: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--disable-domain-reliability",
        "--disable-client-side-phishing-detection",
        "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
        "--metrics-recording-only",
        "--no-pings",
        "--password-store=basic",
        // Nothing but loopback: every other host name fails to resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("--window-size={},{}", options.width, options.height));
    args.push(format!("--lang={}", options.lang));
    args.push(format!("--user-data-dir={}", profile.display()));
    args
}

/// One HTTP exchange with chromedriver; answers the `value` of its JSON.
fn request(agent: &ureq::Agent, method: &str, url: &str, body: Option<Value>) -> WdResult<Value> {
    let req = agent.request(method, url).set("Content-Type", "application/json; charset=utf-8");
    let result = match body {
        Some(b) => req.send_string(&b.to_string()),
        None => req.call(),
    };
    let (status, text) = match result {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => {
            return Err(WdError {
                status: 0,
                error: "transport".into(),
                message: format!("{method} {url}: {e}"),
            })
        }
    };
    let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let value = parsed.get("value").cloned().unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        return Ok(value);
    }
    Err(WdError {
        status,
        error: value["error"].as_str().unwrap_or("unknown error").to_string(),
        message: value["message"].as_str().map(str::to_string).unwrap_or(text),
    })
}

/// Standard base64 (with or without padding, whitespace ignored).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s.as_bytes().iter().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        acc = (acc << 6) | sextet(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A `data:` URL holding `html` (percent-encoded UTF-8), for pages a test writes inline.
pub fn data_url(html: &str) -> String {
    let mut url = String::from("data:text/html;charset=utf-8,");
    for b in html.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_vectors() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("Zg==").unwrap(), b"f");
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode("Zm9vYmFy\n").unwrap(), b"foobar");
        assert_eq!(base64_decode("iVBORw0KGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
        assert!(base64_decode("Zm9v!").is_none());
    }

    /// Chromium and chromedriver are installed in CI; a missing one fails this test.
    #[test]
    fn drives_headless_chromium_on_data_url_and_loopback_pages() {
        let dir = tempfile::tempdir().expect("temp dir");
        let browser = Browser::start(dir.path());
        let page = "<!doctype html><meta charset=utf-8><title>wd test</title>\
            <label for=name>名字</label><input id=name>\
            <button id=go>go</button><p id=out data-state=idle></p>\
            <script>document.getElementById('go').onclick = () => setTimeout(() => {\
              const o = document.getElementById('out');\
              o.textContent = 'hello ' + document.getElementById('name').value;\
              o.dataset.state = 'done'; }, 300);</script>";
        browser.goto(&data_url(page)).expect("load the page");
        assert_eq!(browser.title().expect("title"), "wd test");

        let input = browser.wait_for("#name", Duration::from_secs(30));
        input.send_keys("李工 li").expect("type");
        browser.find("#go").expect("button").click().expect("click");
        let text = browser.wait_for_text("#out", "hello", Duration::from_secs(30));
        assert_eq!(text, "hello 李工 li");
        let out = browser.find("#out").expect("out");
        assert_eq!(out.attribute("data-state").expect("attribute").as_deref(), Some("done"));
        assert_eq!(out.attribute("data-missing").expect("attribute"), None);

        let missing = browser.find("#nothing-here").err().expect("no such element");
        assert_eq!(missing.error, "no such element");
        assert!(missing.is_transient());

        let v = browser.execute("return arguments[0] + 1", vec![json!(41)]).expect("script");
        assert_eq!(v, json!(42));

        let png = browser.screenshot().expect("screenshot");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG, got {} bytes", png.len());
        assert!(png.len() > 1000);

        // Loopback pages load; other host names do not resolve.
        let port = serve_one_page("<!doctype html><title>loopback</title><p id=where>served on loopback</p>");
        browser.goto(&format!("http://127.0.0.1:{port}/")).expect("load a loopback page");
        assert_eq!(
            browser.wait_for_text("#where", "loopback", Duration::from_secs(30)),
            "served on loopback"
        );
        let elsewhere = browser.goto("http://example.invalid/").expect_err("other hosts do not resolve");
        assert!(elsewhere.message.contains("ERR_NAME_NOT_RESOLVED"), "{elsewhere}");
    }

    /// Answers every request on a free loopback port with `html`, from a background thread.
    fn serve_one_page(html: &'static str) -> u16 {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
                    html.len()
                );
            }
        });
        port
    }
}
