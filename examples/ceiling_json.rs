//! The catalog benchmark's reference (bench/catalog.sh): an actix-web server whose one
//! handler answers every GET with the same JSON bytes, read once from a file. The bench
//! gives it the very page simrenew serves, so both send the same bytes; what simrenew
//! does beyond this (authentication, caching checks, middleware) is the difference the
//! ratio shows. Worker count is actix's default, as `simrenew serve` uses.
//!
//! Usage: ceiling_json ADDRESS BODY_FILE

use actix_web::web::Bytes;
use actix_web::{web, App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(body_file)) = (args.next(), args.next()) else {
        eprintln!("usage: ceiling_json ADDRESS BODY_FILE");
        std::process::exit(2);
    };
    let body = Bytes::from(std::fs::read(&body_file)?);
    HttpServer::new(move || {
        let body = body.clone();
        App::new().default_service(web::to(move || {
            let body = body.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body)
            }
        }))
    })
    .bind(address)?
    .run()
    .await
}
