//! What can go wrong in `auth`, and how each failure reaches a client.

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Same answer for an unknown email, a wrong password and a disabled account.
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("invalid token: {0}")]
    InvalidToken(String),
    #[error("this endpoint requires the {0} role")]
    WrongRole(&'static str),
    #[error("too many failed logins")]
    Throttled {
        retry_after_secs: u64,
        /// The account's own limit is reached (not only the client address's): a new password
        /// or `user unlock` lifts it.
        account: bool,
    },
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("self-registration is disabled on this service")]
    RegistrationClosed,
    #[error("no such partner")]
    PartnerNotFound,
    #[error("no user has this email")]
    UserNotFound,
    #[error("the partner already has {0} live client credentials")]
    CredentialLimit(u32),
    #[error("no such client credential")]
    CredentialNotFound,
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl AuthError {
    /// `field` of the request (or of the CLI's input) is not acceptable, for `message`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        AuthError::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        AuthError::Unexpected(e.into())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        use AuthError as A;
        match e {
            A::InvalidCredentials => ApiError::Unauthorized("invalid email or password".into()),
            A::InvalidToken(d) => ApiError::Unauthorized(d),
            A::WrongRole(role) => {
                ApiError::Forbidden(format!("this endpoint requires the {role} role"))
            }
            A::Throttled {
                retry_after_secs,
                account,
            } => ApiError::TooManyRequests {
                retry_after_secs,
                detail: if account {
                    format!(
                        "too many failed logins for this account; retry after {retry_after_secs} \
                         seconds, or unlock it now: setting a new password unlocks it \
                         (`currency-conversion user set-password --email …`, or an admin's \
                         POST /api/v1/partners/{{id}}/password), and so does \
                         `currency-conversion user unlock --email …`"
                    )
                } else {
                    format!(
                        "too many failed logins from this address; retry after \
                         {retry_after_secs} seconds"
                    )
                },
            },
            A::EmailTaken => ApiError::Conflict("an account with this email already exists".into()),
            A::RegistrationClosed => {
                ApiError::Forbidden("self-registration is disabled on this service".into())
            }
            A::PartnerNotFound => ApiError::NotFound("no such partner".into()),
            A::UserNotFound => ApiError::NotFound("no such user".into()),
            A::CredentialLimit(max) => ApiError::ConflictAs {
                slug: "credential-limit",
                detail: format!(
                    "the partner already has {max} live client credentials; revoke one first"
                ),
            },
            A::CredentialNotFound => ApiError::NotFound("no such client credential".into()),
            A::Invalid { field, message } => ApiError::validation(field, message),
            A::Unexpected(e) => ApiError::Internal(e),
        }
    }
}
