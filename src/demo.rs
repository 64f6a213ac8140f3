//! `simrenew serve --demo`: on an empty database, a catalog, an operator, a partner with
//! an FM card and an eSIM, each with a current term, a funded CNY wallet, and a
//! subscription that renews the FM card a few minutes after start — enough to walk the
//! whole renewal journey with curl in a minute, and to watch an automatic one happen.

use chrono::TimeDelta;

use crate::auth::scopes::Scope;
use crate::cards::model::{NewCard, TermGrant};
use crate::db::schema::partners;
use crate::db::Db;
use crate::domain::{time, CardType, Iccid};
use crate::error::ApiError;
use crate::partners::model::{CreatedPartner, NewPartner};
use crate::subscriptions::model::SubscriptionTerms;
use crate::wallet::NewCredit;

/// A Luhn-valid demo ICCID for each card type.
pub const DEMO_FM_ICCID: &str = "89860012345678901238";
pub const DEMO_ESIM_ICCID: &str = "89852000000000000016";
/// How soon after seeding the demo subscription renews the FM card (at the first sweep
/// after it: `SIMRENEW_SWEEP_INTERVAL_S`).
pub const DEMO_RENEWAL_IN: TimeDelta = TimeDelta::minutes(3);

/// What the demo created; the secrets are shown once, here.
pub struct DemoSeed {
    pub operator: CreatedPartner,
    pub partner: CreatedPartner,
}

async fn plan_id(db: &Db, code: &'static str) -> Result<uuid::Uuid, ApiError> {
    let row = db
        .run(move |conn| crate::catalog::store::find_by_code(conn, code).map_err(ApiError::from))
        .await?
        .ok_or_else(|| ApiError::internal(format!("demo plan {code} missing")))?;
    uuid::Uuid::parse_str(&row.id).map_err(ApiError::internal)
}

/// Seeds the demo data if the database has no partner yet; `None` if it has.
pub async fn seed_if_empty(db: &Db) -> Result<Option<DemoSeed>, ApiError> {
    use diesel::prelude::*;
    let partners_exist = db
        .run(|conn| {
            partners::table
                .count()
                .get_result::<i64>(conn)
                .map_err(ApiError::from)
        })
        .await?
        > 0;
    if partners_exist {
        return Ok(None);
    }
    let plans = crate::catalog::demo_plans().map_err(ApiError::internal)?;
    crate::catalog::import_plans(db, plans).await?;
    let operator = crate::partners::create_partner(
        db,
        NewPartner {
            name: "Demo operator".into(),
            scopes: vec![Scope::Admin],
        },
    )
    .await?;
    let partner = crate::partners::create_partner(
        db,
        NewPartner {
            name: "Demo reseller".into(),
            scopes: vec![
                Scope::CatalogRead,
                Scope::CardsRead,
                Scope::OrdersRead,
                Scope::OrdersWrite,
                Scope::WalletRead,
                Scope::Webhooks,
            ],
        },
    )
    .await?;
    crate::cards::import_cards(
        db,
        partner.partner_id,
        vec![
            NewCard {
                iccid: DEMO_FM_ICCID.into(),
                card_type: CardType::Fm,
                msisdn: Some("+8613800138000".into()),
                eid: None,
            },
            NewCard {
                iccid: DEMO_ESIM_ICCID.into(),
                card_type: CardType::Esim,
                msisdn: None,
                eid: None,
            },
        ],
    )
    .await?;
    let now = time::now();
    // The FM card runs out in a little over four days (so it shows up as expiring, and
    // its subscription, four days ahead, renews it minutes from now); the eSIM has
    // twenty days left.
    let fm_from = now - TimeDelta::days(26) + DEMO_RENEWAL_IN;
    let grants = [
        (DEMO_FM_ICCID, "CN-FM-M-10G", fm_from),
        (DEMO_ESIM_ICCID, "JP-ESIM-M-5G", now - TimeDelta::days(10)),
    ];
    for (iccid, code, valid_from) in grants {
        let grant = TermGrant {
            plan_id: plan_id(db, code).await?,
            valid_from: Some(valid_from),
        };
        crate::cards::grant_term(db, iccid.to_owned(), grant, time::to_db(now)).await?;
    }
    crate::wallet::credit(
        db,
        partner.partner_id,
        NewCredit {
            currency: "CNY".into(),
            amount: 100_000,
            reference: Some("demo funds".into()),
        },
        time::to_db(now),
    )
    .await?;
    let iccid = DEMO_FM_ICCID.parse::<Iccid>().map_err(ApiError::internal)?;
    let wanted = SubscriptionTerms {
        plan_id: plan_id(db, "CN-FM-M-10G").await?,
        currency: "CNY".parse().map_err(ApiError::internal)?,
        renew_days_before_expiry: 4,
        ends_after_renewals: None,
    };
    crate::subscriptions::subscribe(
        db,
        partner.partner_id.to_string(),
        iccid,
        wanted,
        time::to_db(now),
    )
    .await?;
    Ok(Some(DemoSeed { operator, partner }))
}
