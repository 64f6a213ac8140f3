//! The balance benchmark's reference (bench/balance.sh): an actix-web server whose one
//! handler reads one card by primary key with diesel, through simrenew's own pool type
//! (`Db`: r2d2 on tokio's blocking threads) with simrenew's default pool size, and
//! answers it as JSON. No authentication, no middleware: the ceiling for an endpoint
//! that needs one row.
//!
//! Usage: DATABASE_URL=postgres://… ceiling_pk ADDRESS
//! Answers `GET /v1/cards/{iccid}/balance` (so the bench's request script serves both).

use actix_web::{web, App, HttpResponse, HttpServer};
use diesel::prelude::*;
use serde::Serialize;
use simrenew::cards::model::CardRow;
use simrenew::db::schema::cards;
use simrenew::db::{DatabaseUrl, Db, DbError, PoolOptions};

#[derive(Serialize)]
struct CardJson {
    iccid: String,
    partner_id: String,
    card_type: String,
    suspended: bool,
}

async fn one_card(db: web::Data<Db>, iccid: web::Path<String>) -> HttpResponse {
    let iccid = iccid.into_inner();
    let found = db
        .run(move |conn| {
            cards::table
                .find(iccid)
                .select(CardRow::as_select())
                .first(conn)
                .optional()
                .map_err(DbError::from)
        })
        .await;
    match found {
        Ok(Some(card)) => HttpResponse::Ok().json(CardJson {
            iccid: card.iccid,
            partner_id: card.partner_id,
            card_type: card.card_type.to_string(),
            suspended: card.suspended,
        }),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(e) => HttpResponse::ServiceUnavailable().body(e.to_string()),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let Some(address) = std::env::args().nth(1) else {
        eprintln!("usage: DATABASE_URL=… ceiling_pk ADDRESS");
        std::process::exit(2);
    };
    let url: DatabaseUrl = std::env::var("DATABASE_URL")
        .map_err(|_| std::io::Error::other("DATABASE_URL is not set"))?
        .parse()
        .map_err(std::io::Error::other)?;
    let db = Db::new(
        &url,
        &PoolOptions {
            max_connections: simrenew::config::default_db_pool_size(),
            acquire_timeout: std::time::Duration::from_secs(3),
        },
    );
    HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(db.clone()))
            .route("/v1/cards/{iccid}/balance", web::get().to(one_card))
    })
    .bind(address)?
    .run()
    .await
}
