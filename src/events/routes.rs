//! The event feed (scope `webhooks`).

use actix_web::{get, web};
use utoipa_actix_web::service_config::ServiceConfig;

use super::model::{Event, EventList, EventQuery};
use super::store;
use crate::auth::principal::{require, Authorized};
use crate::db::Db;
use crate::error::{ApiError, Problem};
use crate::pagination::PageQuery;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_events).service(get_event);
}

/// Your events, oldest first.
///
/// The pull feed: everything that happened to your orders and activations, each event
/// written in the same transaction as its change, kept 30 days at least. Page through
/// with `cursor`; a saved `next_cursor` resumes where you stopped.
#[utoipa::path(
    operation_id = "list_events",
    tag = "events",
    params(EventQuery),
    responses((status = 200, body = EventList)),
    security(("oauth2" = ["webhooks"]), ("bearer" = ["webhooks"]))
)]
#[get("/v1/events")]
async fn list_events(
    auth: Authorized<require::Webhooks>,
    db: web::Data<Db>,
    query: web::Query<EventQuery>,
) -> Result<web::Json<EventList>, ApiError> {
    let filter = query.filter()?;
    let page = PageQuery {
        limit: query.limit,
        cursor: query.cursor.clone(),
    }
    .validate()?;
    let partner_id = auth.principal.partner_id;
    let rows = {
        let page = page.clone();
        db.run(move |conn| {
            store::list_for_partner(conn, &partner_id, &filter, &page).map_err(ApiError::from)
        })
        .await?
    };
    let (rows, next_cursor) = page.finish(rows, |row| row.id.clone());
    Ok(web::Json(EventList {
        data: rows.iter().map(Event::try_from).collect::<Result<_, _>>()?,
        next_cursor,
    }))
}

/// One of your events.
#[utoipa::path(
    operation_id = "get_event",
    tag = "events",
    params(("id" = uuid::Uuid, Path, description = "Event id")),
    responses(
        (status = 200, body = Event),
        (status = 404, description = "No such event among yours.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["webhooks"]), ("bearer" = ["webhooks"]))
)]
#[get("/v1/events/{id}")]
async fn get_event(
    auth: Authorized<require::Webhooks>,
    db: web::Data<Db>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<Event>, ApiError> {
    let id = id.into_inner().to_string();
    let partner_id = auth.principal.partner_id;
    let row = db
        .run(move |conn| {
            store::find_for_partner(conn, &partner_id, &id)?
                .ok_or_else(|| ApiError::not_found(format!("no event {id}")))
        })
        .await?;
    Ok(web::Json(Event::try_from(&row)?))
}
