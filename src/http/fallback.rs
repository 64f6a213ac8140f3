//! What answers when no route matched: `405` with `Allow` when the path exists under
//! other methods, `404` otherwise. The table of paths comes from the generated OpenAPI
//! document, so it can never disagree with the routes actually served.

use actix_web::dev::ResourceDef;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, HttpRequest};

use crate::error::{ApiError, ErrorCode};

pub struct RouteTable {
    routes: Vec<(ResourceDef, Vec<Method>)>,
}

impl RouteTable {
    /// From the served document (JSON): its paths and the methods under each.
    pub fn from_openapi(doc: &serde_json::Value) -> Self {
        let routes = doc["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(path, item)| {
                let methods = [
                    (Method::GET, "get"),
                    (Method::POST, "post"),
                    (Method::PUT, "put"),
                    (Method::PATCH, "patch"),
                    (Method::DELETE, "delete"),
                ]
                .into_iter()
                .filter_map(|(method, key)| item.get(key).is_some().then_some(method))
                .collect();
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        Self { routes }
    }

    /// The methods served at `path`, if it is a path of this API at all.
    fn methods_at(&self, path: &str) -> Option<&[Method]> {
        self.routes
            .iter()
            .find(|(def, _)| def.is_match(path))
            .map(|(_, methods)| methods.as_slice())
    }
}

pub async fn not_matched(
    req: HttpRequest,
    table: web::Data<RouteTable>,
) -> Result<actix_web::HttpResponse, ApiError> {
    Err(match table.methods_at(req.path()) {
        Some(methods) if !methods.is_empty() => {
            let allow = methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let err = ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{} is not allowed here; allowed: {allow}", req.method()),
            );
            match HeaderValue::from_str(&allow) {
                Ok(value) => err.with_header(header::ALLOW, value),
                Err(_) => err,
            }
        }
        _ => ApiError::not_found(format!("no route matches {}", req.path())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_methods_for_templated_paths_only() {
        let doc = serde_json::json!({"paths": {"/v1/orders/{id}": {"get": {}}}});
        let table = RouteTable::from_openapi(&doc);
        assert_eq!(table.methods_at("/v1/orders/abc"), Some(&[Method::GET][..]));
        assert_eq!(table.methods_at("/v1/orders/abc/extra"), None);
        assert_eq!(table.methods_at("/v1/nothing"), None);
    }
}
