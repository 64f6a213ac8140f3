//! A partner's webhook receiver for the tests: records every request (headers and
//! body) and answers with the statuses it was told to, in order (then 200).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct State {
    requests: Vec<Received>,
    answers: VecDeque<u16>,
    redirect_to: Option<String>,
}

pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<State>>,
}

async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    let mut state = state.lock().unwrap();
    let mut headers = http::HeaderMap::new();
    for (name, value) in req.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    state.requests.push(Received {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        headers,
        body: body.to_vec(),
    });
    if let Some(location) = state.redirect_to.clone() {
        return HttpResponse::Found()
            .insert_header(("Location", location))
            .finish();
    }
    let status = state.answers.pop_front().unwrap_or(200);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).body("noted")
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::new(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(handle))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hooks"),
            state,
        }
    }

    /// The next answers, in order (200 once they run out).
    pub fn answer(&self, statuses: &[u16]) {
        self.state.lock().unwrap().answers.extend(statuses);
    }

    /// Answers every request with a redirect to `location`.
    pub fn redirect_to(&self, location: &str) {
        self.state.lock().unwrap().redirect_to = Some(location.to_owned());
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Waits (polling, at most 15 s) until `count` requests arrived; returns them.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..300 {
            let requests = self.requests();
            if requests.len() >= count {
                return requests;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {count} deliveries, got {}", self.requests().len());
    }
}
