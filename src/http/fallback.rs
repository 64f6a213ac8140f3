//! What answers when no route matched: `405` with `Allow` when the path exists under
//! other methods, `404` otherwise. The table of paths comes from the generated OpenAPI
//! document, so it can never disagree with the routes actually served.

use actix_web::dev::ResourceDef;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, HttpRequest};
use utoipa::openapi::OpenApi;

use crate::error::{ApiError, ErrorCode};

pub struct RouteTable {
    routes: Vec<(ResourceDef, Vec<Method>)>,
}

impl RouteTable {
    pub fn from_openapi(doc: &OpenApi) -> Self {
        let routes = doc
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    (Method::GET, item.get.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                ]
                .into_iter()
                .filter_map(|(method, present)| present.then_some(method))
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
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
    use utoipa::openapi::OpenApiBuilder;

    #[test]
    fn finds_methods_for_templated_paths_only() {
        let doc = OpenApiBuilder::new()
            .paths(
                PathsBuilder::new()
                    .path(
                        "/v1/orders/{id}",
                        PathItem::new(HttpMethod::Get, OperationBuilder::new()),
                    )
                    .build(),
            )
            .build();
        let table = RouteTable::from_openapi(&doc);
        assert_eq!(table.methods_at("/v1/orders/abc"), Some(&[Method::GET][..]));
        assert_eq!(table.methods_at("/v1/orders/abc/extra"), None);
        assert_eq!(table.methods_at("/v1/nothing"), None);
    }
}
