//! Extractors that enforce authentication and roles in one place. A handler that takes an
//! [`AdminUser`] cannot run for a partner; one that takes an [`AuthenticatedUser`] cannot run
//! without a valid token of an enabled user.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use actix_web_httpauth::extractors::bearer::BearerAuth;

use super::Auth;
use super::domain::{PartnerId, Role, UserId};
use super::service::{self, AuthError, Caller};
use crate::error::ApiError;

/// Any caller with a valid access token.
#[derive(Debug, Clone)]
pub struct AuthenticatedUser(pub Caller);

impl AuthenticatedUser {
    pub fn id(&self) -> UserId {
        self.0.id
    }
    pub fn role(&self) -> Role {
        self.0.role
    }
    pub fn is_admin(&self) -> bool {
        self.0.role == Role::Admin
    }
    /// The caller's id as a partner's; `None` for an admin.
    pub fn as_partner(&self) -> Option<PartnerId> {
        (self.0.role == Role::Partner).then(|| PartnerId::from_uuid(self.0.id.as_uuid()))
    }
}

/// A caller with the `admin` role; partners get 403.
#[derive(Debug, Clone)]
pub struct AdminUser(pub Caller);

/// A caller with the `partner` role; admins get 403.
#[derive(Debug, Clone)]
pub struct PartnerUser(pub Caller);

impl PartnerUser {
    /// The partner's id, as the owner of what it creates.
    pub fn id(&self) -> PartnerId {
        PartnerId::from_uuid(self.0.id.as_uuid())
    }
}

async fn caller(req: HttpRequest) -> Result<Caller, ApiError> {
    let auth = req
        .app_data::<web::Data<Auth>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("Auth is not registered")))?;
    // The limiter middleware verified this request's token already (partners' requests): its
    // claims are taken as they are, and the header is not parsed a second time.
    let verified = req.extensions_mut().remove::<VerifiedToken>();
    if let Some(verified) = verified {
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .map(|(_, token)| token.trim());
        if header == Some(verified.token.as_str()) {
            return Ok(service::authenticate_verified(
                &auth,
                &verified.token,
                Some(verified.claims),
            )
            .await?);
        }
    }
    let bearer = BearerAuth::extract(&req)
        .await
        .map_err(|_| AuthError::InvalidToken("a bearer token is required".into()))?;
    Ok(service::authenticate_verified(&auth, bearer.token(), None).await?)
}

/// A bearer token whose signature and expiry a middleware already verified for this request
/// (the request limiter, which needs the partner before any route runs), kept in the
/// request's extensions so that the extractor does not verify it again. Only what was
/// verified: whether the token is still good (user enabled, not logged out) is for the
/// extractor to decide, as always.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The token as the `Authorization` header carried it.
    pub token: String,
    /// Its claims.
    pub claims: super::tokens::Claims,
}

type Fut<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

impl FromRequest for AuthenticatedUser {
    type Error = ApiError;
    type Future = Fut<Self>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { caller(req).await.map(AuthenticatedUser) })
    }
}

/// The caller, if it has `role` (403 otherwise).
async fn caller_with_role(req: HttpRequest, role: Role) -> Result<Caller, ApiError> {
    let caller = caller(req).await?;
    if caller.role != role {
        return Err(AuthError::WrongRole(role.as_str()).into());
    }
    Ok(caller)
}

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = Fut<Self>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { caller_with_role(req, Role::Admin).await.map(AdminUser) })
    }
}

impl FromRequest for PartnerUser {
    type Error = ApiError;
    type Future = Fut<Self>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { caller_with_role(req, Role::Partner).await.map(PartnerUser) })
    }
}
