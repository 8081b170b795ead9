//! The ceiling `make bench` compares `GET /rates/latest` and `GET /convert` with: an actix-web
//! server that checks the bearer token exactly as the service does (the service's own
//! [`TokenKeys::verify`], HS256 with issuer, audience and expiry, from the same settings) and
//! answers a fixed JSON body. No database, no Redis, no routing beyond one handler: what is
//! left is HTTP parsing, the JWT check and writing a response, which every authenticated read
//! of the service pays too.
//!
//! Started by `benches/http/run.sh` (`JWT_CEILING_PORT`, settings as for `serve`); the number
//! of workers is the service's (`server.workers`, 0 = one per core).

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use currency_conversion::auth::tokens::TokenKeys;

/// What the ceiling answers on success: about the size of a `latest` answer for a few symbols.
const BODY: &str = r#"{"base":"USD","as_of":"2026-11-27T15:00:00Z","provider":"ecb","stale":false,"rates":{"EUR":"0.8621","GBP":"0.7553","JPY":"156.21","CHF":"0.8040"}}"#;

async fn answer(keys: web::Data<TokenKeys>, req: HttpRequest) -> HttpResponse {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token.map(|t| keys.verify(t, chrono::Utc::now())) {
        Some(Ok(_)) => HttpResponse::Ok()
            .content_type("application/json")
            .body(BODY),
        _ => HttpResponse::Unauthorized().finish(),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let Ok(port) = std::env::var("JWT_CEILING_PORT") else {
        eprintln!("jwt_ceiling: set JWT_CEILING_PORT (benches/http/run.sh does); exiting");
        return Ok(());
    };
    let settings = currency_conversion::settings::load().map_err(std::io::Error::other)?;
    let keys = web::Data::new(TokenKeys::new(&settings.auth));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(keys.clone())
            .default_service(web::to(answer))
    })
    .bind(("127.0.0.1", port.parse().map_err(std::io::Error::other)?))?;
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    server.run().await
}
