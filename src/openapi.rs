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
