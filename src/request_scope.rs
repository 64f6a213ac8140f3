//! What the request being served by the current task is: its id and its language. Set
//! by middleware (`http::request_id`, `http::language`), read wherever a request's
//! answer or log needs them (problem bodies quote the id and speak the language). A
//! leaf module, so that both can use it.

use std::future::Future;

tokio::task_local! {
    static REQUEST_ID: String;
    static LANGUAGE: crate::i18n::Lang;
}

/// The id of the request being served by the current task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `work` as the request `id`.
pub async fn with_request_id<F: Future>(id: String, work: F) -> F::Output {
    REQUEST_ID.scope(id, work).await
}

/// The language the request being served asked for (`en` outside a request).
pub fn current_lang() -> crate::i18n::Lang {
    LANGUAGE.try_with(|lang| *lang).unwrap_or_default()
}

/// Runs `work` answering in `lang`.
pub async fn with_lang<F: Future>(lang: crate::i18n::Lang, work: F) -> F::Output {
    LANGUAGE.scope(lang, work).await
}
