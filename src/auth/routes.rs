//! HTTP routes of `auth`: thin handlers that parse, call `service`, and answer.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Auth;
use super::domain::{DisplayName, Email, LoginEmail, LoginPassword, NewAccount, Role, UserId};
use super::extract::{AdminUser, AuthenticatedUser};
use super::service::{self, AuthError, TokenResponse, UserView};
use crate::error::{ApiError, Problem};
use crate::extract::{Json, OptionalJson, Query};
use crate::pagination::{Page, PageParams};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/token").route(web::post().to(token)))
        .service(web::resource("/auth/refresh").route(web::post().to(refresh)))
        .service(web::resource("/auth/logout").route(web::post().to(logout)))
        .service(web::resource("/auth/register").route(web::post().to(register)))
        .service(web::resource("/me").route(web::get().to(me)))
        .service(
            web::resource("/partners")
                .route(web::get().to(list_partners))
                .route(web::post().to(create_partner)),
        )
        .service(
            web::resource("/partners/{id}")
                .route(web::get().to(get_partner))
                .route(web::patch().to(update_partner)),
        )
        .service(web::resource("/partners/{id}/password").route(web::post().to(reset_password)));
}

#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    /// The account's email address (case-insensitive).
    #[schema(
        pattern = r"^\s*[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s.\x00-\x1f\x7f-\x9f][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s.\x00-\x1f\x7f-\x9f]\s*$",
        max_length = 254,
        value_type = String
    )]
    pub email: LoginEmail,
    /// The account's password; an empty one is refused as missing (422).
    #[schema(min_length = 1, value_type = String)]
    pub password: LoginPassword,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct LogoutRequest {
    /// The refresh token of this session; its whole family is revoked.
    pub refresh_token: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    /// An email address: one `@`, a dotted domain, no spaces; at most 254 characters.
    #[schema(
        pattern = r"^\s*[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s.\x00-\x1f\x7f-\x9f][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s.\x00-\x1f\x7f-\x9f]\s*$",
        max_length = 254,
        value_type = String
    )]
    pub email: Email,
    /// 12 to 128 characters, and not guessable (zxcvbn score 3 or more; the 422 says why).
    #[schema(min_length = 12, max_length = 128)]
    pub password: String,
    /// 1 to 200 characters (spaces at the ends trimmed), no control characters.
    #[schema(
        pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]{0,198}[^\s\x00-\x1f\x7f-\x9f])?\s*$"
    )]
    pub display_name: String,
}

impl RegisterRequest {
    /// The account the body asks for, each field valid. The email is parsed by
    /// deserialisation; the display name and the password are checked here, in that order, since
    /// the password must not be guessable from the account's own email and name.
    pub fn parse(self) -> Result<NewAccount, AuthError> {
        let display_name = DisplayName::parse(&self.display_name)
            .map_err(|m| AuthError::invalid("display_name", m))?;
        NewAccount::new(self.email, display_name, &self.password)
    }
}

#[derive(Deserialize, ToSchema)]
pub struct UpdatePartnerRequest {
    /// 1 to 200 characters (spaces at the ends trimmed), no control characters.
    #[schema(
        pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]{0,198}[^\s\x00-\x1f\x7f-\x9f])?\s*$",
        value_type = Option<String>
    )]
    pub display_name: Option<DisplayName>,
    /// `true` disables the partner at once (its tokens stop working); `false` enables it.
    pub disabled: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordRequest {
    /// 12 to 128 characters, and not guessable (zxcvbn score 3 or more; the 422 says why).
    #[schema(min_length = 12, max_length = 128)]
    pub password: String,
}

/// The throttle bucket of the caller: the socket peer, or the forwarded client when the peer is
/// one of `server.trusted_proxies` (see [`crate::client_ip`]).
pub fn client_ip(auth: &Auth, req: &HttpRequest) -> String {
    crate::client_ip::client_ip(req, &auth.trusted_proxies)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Exchange email and password for an access and a refresh token.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", operation_id = "createToken",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "An access token and a refresh token", body = TokenResponse, headers(("Cache-Control" = String, description = "`no-store`: tokens must not be cached"))),
        (status = 401, description = "Wrong email or password (the same answer for both)", body = Problem),
        (status = 429, description = "Too many failed logins; retry after `Retry-After` seconds", body = Problem),
    ))]
pub async fn token(
    auth: web::Data<Auth>,
    req: HttpRequest,
    body: Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let pair = service::login(&auth, &body.email, body.password, &client_ip(&auth, &req)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(pair))
}

/// Rotate a refresh token: the old one stops working; reusing it revokes the whole family.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", operation_id = "refreshToken",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new access token and a new refresh token; the old refresh token stops working", body = TokenResponse, headers(("Cache-Control" = String, description = "`no-store`: tokens must not be cached"))),
        (status = 401, description = "The refresh token is unknown, expired, revoked or was already used", body = Problem),
    ))]
pub async fn refresh(
    auth: web::Data<Auth>,
    body: Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let pair = service::refresh(&auth, &body.refresh_token).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(pair))
}

/// Revoke this session: the access token and the refresh-token family.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", operation_id = "logout",
    request_body(content = LogoutRequest, description = "Optional: the refresh token of this session"),
    security(("bearer" = [])),
    responses((status = 204, description = "The access token and the refresh-token family are revoked")))]
pub async fn logout(
    auth: web::Data<Auth>,
    user: AuthenticatedUser,
    body: OptionalJson<LogoutRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0.unwrap_or_default();
    service::logout(&auth, &user.0, body.refresh_token.as_deref()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The answer to a registration, the same whether the email was new or already taken.
#[derive(Serialize, ToSchema)]
pub struct RegistrationAccepted {
    /// Always `accepted`.
    pub status: &'static str,
    pub detail: &'static str,
}

const REGISTRATION_ACCEPTED: RegistrationAccepted = RegistrationAccepted {
    status: "accepted",
    detail: "If this email had no account, it has one now: log in with POST /api/v1/auth/token. \
             An existing account is left unchanged.",
};

/// Self-registration of a partner (enabled by `auth.registration_enabled`). A new and a taken
/// email get the same 202, so registration does not reveal who has an account.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", operation_id = "registerPartner", request_body = RegisterRequest,
    responses(
        (status = 202, description = "Registered, or the email already had an account (the same answer)", body = RegistrationAccepted),
        (status = 403, description = "Registration is disabled", body = Problem),
        (status = 422, body = Problem),
    ))]
pub async fn register(
    auth: web::Data<Auth>,
    body: Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    // A closed registration answers 403 before the body's display name and password are judged.
    service::check_registration_open(&auth)?;
    service::register(&auth, body.into_inner().parse()?).await?;
    Ok(HttpResponse::Accepted().json(REGISTRATION_ACCEPTED))
}

/// Who the caller is.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", operation_id = "getMe",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's account", body = UserView)))]
pub async fn me(auth: web::Data<Auth>, user: AuthenticatedUser) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(service::me(&auth, &user.0).await?))
}

/// List partners, newest first (admin).
#[utoipa::path(get, path = "/api/v1/partners", tag = "partners", operation_id = "listPartners",
    params(PageParams), security(("bearer" = ["admin"])),
    responses((status = 200, description = "One page of partners, newest first", body = Page<UserView>)))]
pub async fn list_partners(
    auth: web::Data<Auth>,
    _admin: AdminUser,
    page: Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let (limit, cursor) = page.limit_and_cursor();
    Ok(HttpResponse::Ok().json(service::list_partners(&auth, limit, cursor).await?))
}

/// Create a partner account (admin).
#[utoipa::path(post, path = "/api/v1/partners", tag = "partners", operation_id = "createPartner",
    request_body = RegisterRequest, security(("bearer" = ["admin"])),
    responses(
        (status = 201, description = "The new partner account", body = UserView),
        (status = 409, description = "An account with this email already exists", body = Problem),
    ))]
pub async fn create_partner(
    auth: web::Data<Auth>,
    _admin: AdminUser,
    body: Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = service::create_account(&auth, body.into_inner().parse()?, Role::Partner).await?;
    Ok(HttpResponse::Created().json(user))
}

fn partner_id(raw: &str) -> Result<UserId, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(UserId::from_uuid)
        .map_err(|_| ApiError::NotFound("no such partner".into()))
}

/// One partner (admin).
#[utoipa::path(get, path = "/api/v1/partners/{id}", tag = "partners", operation_id = "getPartner",
    params(("id" = uuid::Uuid, Path, description = "Partner id")), security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The partner", body = UserView),
        (status = 404, description = "No such partner", body = Problem),
    ))]
pub async fn get_partner(
    auth: web::Data<Auth>,
    _admin: AdminUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(service::get_partner(&auth, partner_id(&id)?).await?))
}

/// Rename, disable or enable a partner (admin). Disabling takes effect at once.
#[utoipa::path(patch, path = "/api/v1/partners/{id}", tag = "partners", operation_id = "updatePartner",
    request_body = UpdatePartnerRequest,
    params(("id" = uuid::Uuid, Path, description = "Partner id")), security(("bearer" = ["admin"])),
    responses(
        (status = 200, description = "The partner as updated", body = UserView),
        (status = 404, description = "No such partner", body = Problem),
    ))]
pub async fn update_partner(
    auth: web::Data<Auth>,
    _admin: AdminUser,
    id: web::Path<String>,
    body: Json<UpdatePartnerRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = service::update_partner(
        &auth,
        partner_id(&id)?,
        body.display_name.as_ref(),
        body.disabled,
    )
    .await?;
    Ok(HttpResponse::Ok().json(user))
}

/// Set a partner's password (admin); ends the partner's sessions and lifts its login lock
/// (after too many failed logins), so the new password works at once.
#[utoipa::path(post, path = "/api/v1/partners/{id}/password", tag = "partners", operation_id = "setPartnerPassword",
    request_body = PasswordRequest,
    params(("id" = uuid::Uuid, Path, description = "Partner id")), security(("bearer" = ["admin"])),
    responses(
        (status = 204, description = "Password set; the partner's sessions are ended and its login lock lifted"),
        (status = 404, description = "No such partner", body = Problem),
    ))]
pub async fn reset_password(
    auth: web::Data<Auth>,
    _admin: AdminUser,
    id: web::Path<String>,
    body: Json<PasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    service::reset_password(&auth, partner_id(&id)?, &body.password).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem_field(err: ApiError) -> (String, String) {
        match err {
            ApiError::Validation { errors, .. } => {
                (errors[0].field.clone(), errors[0].message.clone())
            }
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn a_bad_email_or_display_name_is_a_problem_naming_its_field() {
        let body = |email: &str, name: &str| {
            serde_json::json!({"email": email, "password": "correct horse battery staple",
                "display_name": name})
        };
        let err = Json::<RegisterRequest>::from_value(body("bad", ""))
            .err()
            .unwrap();
        assert_eq!(
            problem_field(err),
            ("email".into(), "is not an email address".into())
        );
        let request = Json::<RegisterRequest>::from_value(body("a@b.io", " "))
            .unwrap()
            .into_inner();
        let err = ApiError::from(request.parse().err().unwrap());
        assert_eq!(
            problem_field(err),
            ("display_name".into(), "is required".into())
        );
        let err = Json::<UpdatePartnerRequest>::from_value(serde_json::json!({"display_name": ""}))
            .err()
            .unwrap();
        assert_eq!(
            problem_field(err),
            ("display_name".into(), "is required".into())
        );
        let err =
            Json::<TokenRequest>::from_value(serde_json::json!({"email": "x", "password": ""}))
                .err()
                .unwrap();
        assert_eq!(
            problem_field(err),
            ("password".into(), "is required".into())
        );
    }
}
