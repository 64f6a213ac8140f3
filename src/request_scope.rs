//! What the request being served by the current task is: its id. Set by the request-id
//! middleware (`http::request_id`), read wherever a request's answer or log needs it
//! (problem bodies quote it). A leaf module, so that both can use it.

use std::future::Future;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being served by the current task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `work` as the request `id`.
pub async fn with_request_id<F: Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}
