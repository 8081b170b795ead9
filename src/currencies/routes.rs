//! HTTP routes of `currencies`.

use actix_web::web::Bytes;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Currencies;
use super::events::CurrencyChange;
use super::service::{self, AddCurrency, Currency, CurrencyName, DeleteOutcome};
use crate::auth::{AdminUser, AuthenticatedUser};
use crate::currencies::CurrencyCode;
use crate::error::{ApiError, Problem};
use crate::extract::{Json, Query};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/currencies")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/currencies/{code}")
            .route(web::get().to(get))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    );
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Admins only: include disabled and retired currencies.
    #[serde(default)]
    pub include_inactive: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CurrencyList {
    pub data: Vec<Currency>,
    /// Always `null`: the list is short enough to come in one page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateCurrency {
    /// Three letters, case-insensitive.
    pub code: CurrencyCode,
    /// Defaults to the ISO 4217 English name. 1 to 100 characters, spaces at the ends trimmed, no control characters.
    #[schema(
        value_type = Option<String>,
        pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]{0,98}[^\s\x00-\x1f\x7f-\x9f])?\s*$"
    )]
    pub name: Option<CurrencyName>,
    /// Defaults to the ISO 4217 minor units; required for non-ISO codes.
    #[schema(minimum = 0, maximum = 4)]
    #[serde(default, deserialize_with = "crate::extract::opt_whole_number")]
    pub minor_units: Option<i16>,
    /// Send `false` to add a code that is not in ISO 4217 (e.g. a crypto asset).
    pub iso: Option<bool>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateCurrency {
    /// 1 to 100 characters, spaces at the ends trimmed, no control characters.
    #[schema(
        value_type = Option<String>,
        pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]{0,98}[^\s\x00-\x1f\x7f-\x9f])?\s*$"
    )]
    pub name: Option<CurrencyName>,
    /// `false` disables (hidden, refused for new conversions); `true` enables, also bringing a
    /// retired currency back.
    pub enabled: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct DeleteResult {
    pub code: crate::currencies::CurrencyCode,
    pub outcome: DeleteOutcome,
}

fn code(raw: &str) -> Result<crate::currencies::CurrencyCode, ApiError> {
    Ok(service::parse_code("code", raw)?)
}

/// Supported currencies (enabled ones; admins may include inactive ones).
#[utoipa::path(get, path = "/api/v1/currencies", tag = "currencies", operation_id = "listCurrencies",
    params(ListParams), security(("bearer" = [])),
    responses(
        (status = 200, description = "The supported currencies", body = CurrencyList),
        (status = 403, description = "`include_inactive` is for admins only", body = Problem),
    ))]
pub async fn list(
    currencies: web::Data<Currencies>,
    user: AuthenticatedUser,
    params: Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    if params.include_inactive && !user.is_admin() {
        return Err(ApiError::Forbidden(
            "only admins may list inactive currencies".into(),
        ));
    }
    let include_inactive = params.include_inactive;
    let body = currencies
        .lists
        .get_or_load(&currencies.redis, include_inactive, || async {
            let data = service::list(&currencies.db, include_inactive).await?;
            let body = serde_json::to_vec(&CurrencyList {
                data,
                next_cursor: None,
            })
            .map_err(anyhow::Error::from)?;
            Ok::<_, ApiError>(Bytes::from(body))
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(body))
}

/// One currency. Partners see only supported ones; admins see any.
#[utoipa::path(get, path = "/api/v1/currencies/{code}", tag = "currencies", operation_id = "getCurrency",
    params(("code" = crate::currencies::CurrencyCode, Path, description = "Currency code, case-insensitive")), security(("bearer" = [])),
    responses(
        (status = 200, description = "The currency", body = Currency),
        (status = 404, description = "The currency is not supported", body = Problem),
        (status = 422, description = "The code is not three letters", body = Problem),
    ))]
pub async fn get(
    currencies: web::Data<Currencies>,
    user: AuthenticatedUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let currency = service::get(&currencies.db, code(&path)?, user.is_admin()).await?;
    Ok(HttpResponse::Ok().json(currency))
}

/// Add a currency (admin). ISO 4217 codes get their name and minor units from the catalogue.
#[utoipa::path(post, path = "/api/v1/currencies", tag = "currencies", operation_id = "createCurrency",
    request_body = CreateCurrency, security(("bearer" = ["admin"])),
    responses(
        (status = 201, description = "The new currency", body = Currency),
        (status = 409, description = "The currency exists already (or is retired: enable it instead)", body = Problem),
    ))]
pub async fn create(
    currencies: web::Data<Currencies>,
    _admin: AdminUser,
    body: Json<CreateCurrency>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let currency = service::add(
        &currencies.db,
        AddCurrency {
            code: body.code,
            name: body.name,
            minor_units: body.minor_units,
            iso: body.iso,
            enabled: body.enabled,
        },
        currencies.clock.now(),
    )
    .await?;
    currencies
        .changed(
            currency
                .usable()
                .then_some(CurrencyChange::Added(currency.code)),
        )
        .await;
    Ok(HttpResponse::Created().json(currency))
}

/// Rename, disable or enable a currency (admin).
#[utoipa::path(patch, path = "/api/v1/currencies/{code}", tag = "currencies", operation_id = "updateCurrency",
    request_body = UpdateCurrency, params(("code" = crate::currencies::CurrencyCode, Path, description = "Currency code, case-insensitive")), security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The currency as updated", body = Currency),
        (status = 404, description = "No such currency", body = Problem),
    ))]
pub async fn update(
    currencies: web::Data<Currencies>,
    _admin: AdminUser,
    path: web::Path<String>,
    body: Json<UpdateCurrency>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let currency = service::update(
        &currencies.db,
        code(&path)?,
        body.name,
        body.enabled,
        currencies.clock.now(),
    )
    .await?;
    currencies
        .changed(Some(if body.enabled == Some(true) {
            CurrencyChange::Enabled(currency.code)
        } else {
            CurrencyChange::Changed(currency.code)
        }))
        .await;
    Ok(HttpResponse::Ok().json(currency))
}

/// Delete a currency (admin). If stored rates or conversions reference it, it is **retired**
/// instead: kept, hidden from the supported list and refused for new conversions, while the
/// history that mentions it stays readable. The response says which happened.
#[utoipa::path(delete, path = "/api/v1/currencies/{code}", tag = "currencies", operation_id = "deleteCurrency",
    params(("code" = crate::currencies::CurrencyCode, Path, description = "Currency code, case-insensitive")), security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "Deleted, or retired when history references it", body = DeleteResult),
        (status = 404, description = "No such currency", body = Problem),
        (status = 422, description = "The code is not three letters", body = Problem),
    ))]
pub async fn delete(
    currencies: web::Data<Currencies>,
    _admin: AdminUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let code = code(&path)?;
    let outcome = service::delete(&currencies.db, code, currencies.clock.now()).await?;
    currencies
        .changed(Some(CurrencyChange::Removed(code)))
        .await;
    Ok(HttpResponse::Ok().json(DeleteResult { code, outcome }))
}
