//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Currency Conversion Service",
        description = "Exchange rates from real providers, conversions with a holding period, history and task monitoring. Amounts and rates are decimal strings; timestamps are RFC 3339 UTC; errors are RFC 9457 problem+json.",
    ),
    paths(
        crate::health::live,
        crate::health::ready,
        crate::health::metrics,
        crate::auth::routes::token,
        crate::auth::routes::refresh,
        crate::auth::routes::logout,
        crate::auth::routes::register,
        crate::auth::routes::me,
        crate::auth::routes::list_partners,
        crate::auth::routes::create_partner,
        crate::auth::routes::get_partner,
        crate::auth::routes::update_partner,
        crate::auth::routes::reset_password,
        crate::currencies::routes::list,
        crate::currencies::routes::get,
        crate::currencies::routes::create,
        crate::currencies::routes::update,
        crate::currencies::routes::delete,
        crate::rates::routes::latest,
        crate::rates::routes::at,
        crate::rates::routes::series_handler,
        crate::rates::routes::convert,
        crate::conversions::routes::create,
        crate::conversions::routes::get,
        crate::conversions::routes::cancel,
        crate::quotes::routes::create,
        crate::quotes::routes::get,
        crate::history::routes::list,
        crate::history::routes::summary,
        crate::tasks::routes::list_runs,
        crate::tasks::routes::get_run,
        crate::tasks::routes::run_now,
        crate::tasks::routes::retry_run,
        crate::tasks::routes::stats,
        crate::tasks::routes::schedules,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness, readiness, metrics"),
        (name = "auth", description = "Tokens, refresh, logout, registration"),
        (name = "partners", description = "Partner accounts (admin)"),
        (name = "currencies", description = "Supported currencies (ISO 4217 and explicit others)"),
        (name = "rates", description = "Exchange rates: latest, as of an instant, series, conversion quotes"),
        (name = "conversions", description = "Convert amounts; temporary during the holding period, then permanent"),
        (name = "quotes", description = "Rate locks: a quoted rate held for a while, at a spread that is shown"),
        (name = "history", description = "A partner's own conversions: list, CSV export, summary"),
        (name = "tasks", description = "Background task runs, queue and schedules (admin)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
