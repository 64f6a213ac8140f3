//! Order routes (scopes `orders:write` / `orders:read`).

use actix_web::{get, web};
use utoipa_actix_web::service_config::ServiceConfig;

use super::model::{Order, OrderList, OrderQuery, OrderRow};
use super::store;
use crate::auth::principal::{require, Authorized};
use crate::cards::{self, store as card_store};
use crate::db::Db;
use crate::domain::{CardPath, Iccid};
use crate::error::{ApiError, Problem};
use crate::pagination::PageQuery;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_orders)
        .service(get_order)
        .service(list_card_orders);
}

/// One page of orders, newest first, with the cursor of the next.
fn order_page(
    page: &crate::pagination::PageRequest,
    rows: Vec<OrderRow>,
) -> Result<OrderList, ApiError> {
    let (rows, next_cursor) = page.finish(rows, |row| row.id.clone());
    Ok(OrderList {
        data: rows.iter().map(Order::try_from).collect::<Result<_, _>>()?,
        next_cursor,
    })
}

/// List your orders, newest first.
#[utoipa::path(
    operation_id = "list_orders",
    tag = "orders",
    params(OrderQuery),
    responses(
        (status = 200, body = OrderList),
        (status = 400, description = "Unknown parameter or malformed timestamp.", body = Problem,
         content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter value.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/orders")]
async fn list_orders(
    auth: Authorized<require::OrdersRead>,
    db: web::Data<Db>,
    query: web::Query<OrderQuery>,
) -> Result<web::Json<OrderList>, ApiError> {
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
    Ok(web::Json(order_page(&page, rows)?))
}

/// Get one of your orders (its receipt number is the 交易凭证).
#[utoipa::path(
    operation_id = "get_order",
    tag = "orders",
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, body = Order),
        (status = 404, description = "No such order among yours.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/orders/{id}")]
async fn get_order(
    auth: Authorized<require::OrdersRead>,
    db: web::Data<Db>,
    id: web::Path<uuid::Uuid>,
) -> Result<web::Json<Order>, ApiError> {
    let id = id.into_inner().to_string();
    let partner_id = auth.principal.partner_id;
    let row = db
        .run(move |conn| {
            store::find_for_partner(conn, &partner_id, &id)?.ok_or_else(|| super::no_order(&id))
        })
        .await?;
    Ok(web::Json(Order::try_from(&row)?))
}

/// A card's orders, newest first.
#[utoipa::path(
    operation_id = "list_card_orders",
    tag = "orders",
    params(CardPath, PageQuery),
    responses(
        (status = 200, body = OrderList),
        (status = 404, description = "No such card among yours.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["orders:read"]), ("bearer" = ["orders:read"]))
)]
#[get("/v1/cards/{iccid}/orders")]
async fn list_card_orders(
    auth: Authorized<require::OrdersRead>,
    db: web::Data<Db>,
    iccid: web::Path<Iccid>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<OrderList>, ApiError> {
    let page = query.validate()?;
    let partner_id = auth.principal.partner_id;
    let iccid = iccid.into_inner().to_string();
    let rows = {
        let page = page.clone();
        db.run(move |conn| {
            card_store::find_partner_card(conn, &partner_id, &iccid)?
                .ok_or_else(|| cards::no_card(&iccid))?;
            let filter = super::model::OrderFilter {
                iccid: Some(iccid.clone()),
                ..Default::default()
            };
            Ok::<_, ApiError>(store::list_for_partner(conn, &partner_id, &filter, &page)?)
        })
        .await?
    };
    Ok(web::Json(order_page(&page, rows)?))
}
