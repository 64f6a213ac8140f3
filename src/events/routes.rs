//! The event feed (scope `webhooks`).

use actix_web::{get, web};
use utoipa_actix_web::service_config::ServiceConfig;

use super::model::{Event, EventList, EventQuery};
use super::store;
use crate::auth::principal::{require, Authorized};
use crate::db::Db;
use crate::error::{ApiError, FieldError, Problem};
use crate::pagination::{encode_cursor, PageQuery};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_events).service(get_event);
}

/// Your events, oldest first.
///
/// The pull feed: everything that happened to your orders and activations, each event
/// written in the same transaction as its change, kept 30 days at least. Page through
/// with `cursor`. `next_cursor` is always given, also after the last event: saved, it
/// resumes the feed exactly where you stopped, in commit order.
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
    let after_seq = match &page.after {
        None => 0,
        Some(key) => key.parse::<i64>().map_err(|_| {
            ApiError::validation(vec![FieldError::new(
                "cursor",
                "is not a cursor this API returned",
            )])
        })?,
    };
    let limit = page.limit as usize;
    let partner_id = auth.principal.partner_id;
    let mut rows = db
        .run(move |conn| {
            store::list_for_partner(conn, &partner_id, &filter, after_seq, page.fetch_limit())
                .map_err(ApiError::from)
        })
        .await?;
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let last_seq = rows.last().map_or(after_seq, |row| row.seq);
    Ok(web::Json(EventList {
        data: rows.iter().map(Event::try_from).collect::<Result<_, _>>()?,
        next_cursor: encode_cursor(&last_seq.to_string()),
        has_more,
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
