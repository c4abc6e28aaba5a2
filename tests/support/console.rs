//! The web console over HTTP/1.1, as a browser without JavaScript uses it:
//! GET a page, POST a form, keep the cookies the console sets.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// An answer, whole.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// Where a redirect points.
    pub fn location(&self) -> &str {
        self.header("location")
    }

    /// The value of the hidden `csrf` field of the first form that has one.
    pub fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a form with a csrf token");
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').expect("the token's end")].to_string()
    }
}

/// A browser-like client of one console: it keeps the cookies it is given.
pub struct Browser {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(addr: SocketAddr) -> Browser {
        Browser {
            base: format!("http://{addr}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, request: hyper::http::request::Builder, body: String) -> Page {
        let cookie: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let request = if cookie.is_empty() { request } else { request.header("cookie", cookie.join("; ")) };
        let response = self.client.request(request.body(Full::new(Bytes::from(body))).expect("a request")).await;
        let response = response.expect("the console answers");
        let (parts, body) = response.into_parts();
        for value in parts.headers.get_all("set-cookie") {
            let value = value.to_str().expect("ascii cookie");
            let pair = value.split(';').next().expect("a pair");
            let (name, cookie) = pair.split_once('=').expect("name=value");
            let expired = value.contains("Max-Age=0");
            if expired || cookie.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), cookie.to_string());
            }
        }
        let bytes = body.collect().await.expect("the whole body").to_bytes();
        Page { status: parts.status, headers: parts.headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Request::get(format!("{}{path}", self.base)), String::new()).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
        let request =
            Request::post(format!("{}{path}", self.base)).header("content-type", "application/x-www-form-urlencoded");
        self.send(request, body.join("&")).await
    }

    /// Opens the sign-in page and submits `key`; returns the answer to the POST.
    pub async fn sign_in(&mut self, key: &str) -> Page {
        let form = self.get("/signin").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let csrf = form.csrf();
        self.post("/signin", &[("key", key), ("csrf", &csrf)]).await
    }
}

/// `application/x-www-form-urlencoded` and query-string encoding.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
