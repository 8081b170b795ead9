//! HTTP routes of `auth`: thin handlers that parse, call `service`, and answer.

use actix_web::dev::Payload;
use actix_web::http::{StatusCode, header};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Auth;
use super::credentials::{
    self, ClientAuth, CreatedCredential, CredentialName, CredentialView, GrantError,
};
use super::domain::{DisplayName, Email, LoginEmail, LoginPassword, NewAccount, PartnerId, Role};
use super::extract::{AdminUser, AuthenticatedUser};
use super::service::{self, AuthError, TokenResponse, UserView};
use crate::error::{ApiError, Problem, StandardErrorBody};
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
        .service(web::resource("/partners/{id}/password").route(web::post().to(reset_password)))
        .service(
            web::resource("/credentials")
                .route(web::get().to(list_credentials))
                .route(web::post().to(create_credential)),
        )
        .service(web::resource("/credentials/{id}").route(web::delete().to(revoke_credential)));
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

/// The `client_credentials` grant's form (RFC 6749 §4.4.2), with the client's id and secret
/// when it authenticates in the body rather than with HTTP Basic (§2.3.1).
#[derive(Deserialize, ToSchema)]
pub struct ClientCredentialsRequest {
    /// `client_credentials`.
    pub grant_type: String,
    /// The credential's `client_id`, unless sent with HTTP Basic.
    pub client_id: Option<String>,
    /// The credential's `client_secret`, unless sent with HTTP Basic.
    pub client_secret: Option<String>,
    /// Ignored: a token carries the partner's whole access.
    pub scope: Option<String>,
}

/// An OAuth 2.0 error response (RFC 6749 §5.2).
#[derive(Serialize, ToSchema)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client` or `unsupported_grant_type`.
    pub error: &'static str,
    pub error_description: String,
}

fn oauth_error(status: StatusCode, error: &'static str, description: &str) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    if status == StatusCode::UNAUTHORIZED {
        res.insert_header((
            header::WWW_AUTHENTICATE,
            r#"Basic realm="currency-conversion""#,
        ));
    }
    let mut res = res.json(OAuthError {
        error,
        error_description: description.to_owned(),
    });
    res.extensions_mut().insert(StandardErrorBody);
    res
}

fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// One part of HTTP Basic client authentication, form-urlencoded as RFC 6749 §2.3.1 requires.
fn form_decode(part: &str) -> Option<String> {
    if part.contains(['&', '=']) {
        return None;
    }
    form_urlencoded::parse(format!("v={part}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

/// The client's id and secret from `Authorization: Basic`, when that header is sent: `Err` when
/// it is sent but is not readable Basic credentials.
fn basic_client(req: &HttpRequest) -> Option<Result<ClientAuth, ()>> {
    use base64::Engine;
    let value = req.headers().get(header::AUTHORIZATION)?;
    let parsed = (|| {
        let value = value.to_str().ok()?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        Some(ClientAuth {
            client_id: form_decode(id)?,
            client_secret: form_decode(secret)?,
        })
    })();
    Some(parsed.ok_or(()))
}

/// The `client_credentials` grant: the form read, the client authenticated, a token issued, or
/// the RFC 6749 §5.2 error saying why not.
async fn client_credentials_grant(auth: &Auth, req: &HttpRequest, body: &[u8]) -> HttpResponse {
    let invalid_request = |d: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", d);
    // Parameters sent without a value count as omitted (RFC 6749 §3.2); a repeated one is
    // refused by the deserialiser (duplicate field).
    let pairs = form_urlencoded::parse(body).filter(|(_, v)| !v.is_empty());
    let form: ClientCredentialsRequest = match serde_urlencoded::from_str(
        &form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish(),
    ) {
        Ok(form) => form,
        Err(e) if e.to_string().starts_with("missing field") => {
            return invalid_request("grant_type is required");
        }
        Err(e) => return invalid_request(&format!("the form is not acceptable: {e}")),
    };
    if form.grant_type != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only grant_type=client_credentials is accepted as a form; log in with a JSON body",
        );
    }
    let client = match (basic_client(req), form.client_id, form.client_secret) {
        (Some(_), _, Some(_)) => {
            return invalid_request(
                "the client authenticated both with HTTP Basic and in the body; use one",
            );
        }
        (Some(Ok(basic)), Some(id), None) if id != basic.client_id => {
            return invalid_request("client_id differs from the HTTP Basic user name");
        }
        (Some(Ok(basic)), _, None) => basic,
        (Some(Err(())), _, None) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "the Authorization header is not HTTP Basic client credentials",
            );
        }
        (None, Some(client_id), Some(client_secret)) => ClientAuth {
            client_id,
            client_secret,
        },
        (None, _, _) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication is required (HTTP Basic, or client_id and client_secret)",
            );
        }
    };
    match credentials::grant(auth, &client, &client_ip(auth, req)).await {
        Ok(token) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(token),
        Err(GrantError::InvalidRequest(d)) => invalid_request(&d),
        Err(GrantError::InvalidClient) => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client, wrong secret, or a revoked credential",
        ),
        Err(GrantError::UnsupportedGrantType) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials is supported",
        ),
        Err(GrantError::Throttled {
            retry_after_secs,
            client,
        }) => actix_web::ResponseError::error_response(&ApiError::TooManyRequests {
            retry_after_secs,
            detail: if client {
                format!(
                    "too many failed authentications for this client; retry after \
                     {retry_after_secs} seconds"
                )
            } else {
                format!(
                    "too many failed logins from this address; retry after {retry_after_secs} \
                     seconds"
                )
            },
        }),
        Err(GrantError::Unexpected(e)) => {
            actix_web::ResponseError::error_response(&ApiError::Internal(e))
        }
    }
}

/// Get an access token: a person logs in with a JSON body of email and password (an access and
/// a refresh token); a partner's machine sends `grant_type=client_credentials` as a form, its
/// client authenticated with HTTP Basic or with `client_id` and `client_secret` in the form (an
/// access token only, RFC 6749 §4.4). Grant errors are RFC 6749 §5.2 JSON.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", operation_id = "createToken",
    request_body(content(
        (TokenRequest = "application/json"),
        (ClientCredentialsRequest = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "For a login: an access token and a refresh token. For the client_credentials grant: an access token only (`ClientToken`: no refresh token)", body = TokenResponse, headers(("Cache-Control" = String, description = "`no-store`: tokens must not be cached"))),
        (status = 400, description = "A form grant: `invalid_request` (a parameter missing or repeated, two client authentications) or `unsupported_grant_type` (RFC 6749 §5.2, `application/json`); a JSON login: the body is not well-formed JSON (problem+json)", body = OAuthError),
        (status = 401, description = "A login: wrong email or password (the same answer for both; problem+json). A form grant: `invalid_client` (unknown client, wrong secret, revoked credential, disabled partner; RFC 6749 §5.2 with `WWW-Authenticate: Basic`)", body = OAuthError),
        (status = 429, description = "Too many failed logins or client authentications; retry after `Retry-After` seconds", body = Problem),
    ))]
pub async fn token(
    auth: web::Data<Auth>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let mut payload: Payload = payload.into_inner();
    if is_form(&req) {
        let body = web::Bytes::from_request(&req, &mut payload)
            .await
            .map_err(|e| ApiError::PayloadTooLarge(e.to_string()))?;
        return Ok(client_credentials_grant(&auth, &req, &body).await);
    }
    let body = Json::<TokenRequest>::from_request(&req, &mut payload)
        .await?
        .into_inner();
    let pair = service::login(&auth, &body.email, body.password, &client_ip(&auth, &req))
        .await
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(pair))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateCredentialRequest {
    /// 1 to 100 characters (spaces at the ends trimmed), no control characters: what the
    /// partner calls this machine or integration.
    #[schema(value_type = String, min_length = 1, max_length = 100)]
    pub name: CredentialName,
    /// For an admin: the partner the credential is for (required). A partner leaves it out or
    /// names itself.
    pub partner_id: Option<uuid::Uuid>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CredentialsQuery {
    /// For an admin: whose credentials (required). A partner sees its own.
    pub partner_id: Option<uuid::Uuid>,
}

/// The partner a credential request is about: the caller itself, or for an admin the
/// `partner_id` given. A partner naming another partner is refused.
fn credential_owner(
    user: &AuthenticatedUser,
    partner_id: Option<uuid::Uuid>,
) -> Result<PartnerId, ApiError> {
    match (user.as_partner(), partner_id) {
        (Some(me), None) => Ok(me),
        (Some(me), Some(id)) if id == me.as_uuid() => Ok(me),
        (Some(_), Some(_)) => Err(ApiError::Forbidden(
            "a partner manages only its own credentials".into(),
        )),
        (None, Some(id)) => Ok(PartnerId::from_uuid(id)),
        (None, None) => Err(ApiError::validation(
            "partner_id",
            "is required for an admin: whose credentials",
        )),
    }
}

/// The list of a partner's client credentials.
#[derive(Serialize, ToSchema)]
pub struct CredentialList {
    pub data: Vec<CredentialView>,
}

/// Create a client credential for the `client_credentials` grant. The secret is in this answer
/// only; at most `auth.max_credentials_per_partner` live credentials per partner.
#[utoipa::path(post, path = "/api/v1/credentials", tag = "credentials", operation_id = "createCredential",
    request_body = CreateCredentialRequest, security(("bearer" = ["partner", "admin"])),
    responses(
        (status = 201, description = "The credential, with its `client_secret` (shown once)", body = CreatedCredential, headers(("Cache-Control" = String, description = "`no-store`: the secret must not be cached"))),
        (status = 403, description = "A partner named another partner", body = Problem),
        (status = 404, description = "An admin named no partner", body = Problem),
        (status = 409, description = "`/problems/credential-limit`: the partner has as many live credentials as allowed", body = Problem),
    ))]
pub async fn create_credential(
    auth: web::Data<Auth>,
    user: AuthenticatedUser,
    body: Json<CreateCredentialRequest>,
) -> Result<HttpResponse, ApiError> {
    let owner = credential_owner(&user, body.partner_id)?;
    let created = credentials::create(&auth, owner, &body.name).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(created))
}

/// List a partner's live client credentials (never their secrets), oldest first.
#[utoipa::path(get, path = "/api/v1/credentials", tag = "credentials", operation_id = "listCredentials",
    params(CredentialsQuery), security(("bearer" = ["partner", "admin"])),
    responses(
        (status = 200, description = "The live credentials, with when each was created and last used", body = CredentialList),
        (status = 403, description = "A partner named another partner", body = Problem),
    ))]
pub async fn list_credentials(
    auth: web::Data<Auth>,
    user: AuthenticatedUser,
    query: Query<CredentialsQuery>,
) -> Result<HttpResponse, ApiError> {
    let owner = credential_owner(&user, query.partner_id)?;
    Ok(HttpResponse::Ok().json(CredentialList {
        data: credentials::list(&auth, owner).await?,
    }))
}

/// Revoke a client credential: no new token is issued on it, and the tokens already issued stop
/// working within a second on every instance. A partner revokes its own; an admin any.
#[utoipa::path(delete, path = "/api/v1/credentials/{id}", tag = "credentials", operation_id = "revokeCredential",
    params(("id" = uuid::Uuid, Path, description = "Credential id")), security(("bearer" = ["partner", "admin"])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such live credential (or another partner's)", body = Problem),
    ))]
pub async fn revoke_credential(
    auth: web::Data<Auth>,
    user: AuthenticatedUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::NotFound("no such client credential".into()))?;
    credentials::revoke(&auth, id, user.as_partner()).await?;
    Ok(HttpResponse::NoContent().finish())
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
    let profile = service::me(&auth, &user.0).await?;
    Ok(HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(profile.0))
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
    Ok(HttpResponse::Ok().json(service::get_partner(&auth, service::user_named(&id)?).await?))
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
        service::user_named(&id)?,
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
    service::reset_password(&auth, service::user_named(&id)?, &body.password).await?;
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
