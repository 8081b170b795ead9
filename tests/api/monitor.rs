//! The admin monitor over HTTP, as a browser would use it: a session cookie from the login form,
//! CSRF tokens scraped from the pages, redirects not followed so that each step is visible.

use currency_conversion::auth::Role;
use currency_conversion::tasks::{self, TaskState};
use uuid::Uuid;

use crate::helpers::{TEST_PASSWORD, TestApp, spawn_app, spawn_app_with};

/// A browser signed in to the monitor.
struct MonitorClient<'a> {
    app: &'a TestApp,
    cookie: String,
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Encodes fields as a browser encodes a form.
fn form_body(fields: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                    char::from(b).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A browser's pre-login state: the nonce cookie and the CSRF token of the login form.
struct LoginForm {
    cookie: String,
    csrf: String,
}

/// GETs the login form as a browser without cookies would.
async fn login_form(app: &TestApp) -> LoginForm {
    let res = app.get("/monitor/login").await;
    assert_eq!(res.status(), 200);
    let cookie = cookie_named(&res, "ccs_monitor_login").expect("a pre-login cookie");
    let page = res.text().await.unwrap();
    LoginForm {
        cookie: cookie.split(';').next().unwrap().to_owned(),
        csrf: csrf_field(&page),
    }
}

/// The value of the first `csrf` field of a page.
fn csrf_field(page: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = page.find(marker).expect("a CSRF field") + marker.len();
    page[start..start + 64].to_owned()
}

/// POSTs the login form of `form` (cookie and token); returns the response.
async fn post_login_with(
    app: &TestApp,
    form: &LoginForm,
    email: &str,
    password: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/monitor/login"))
        .header("content-type", FORM)
        .header("cookie", &form.cookie)
        .body(form_body(&[
            ("email", email),
            ("password", password),
            ("csrf", &form.csrf),
        ]))
        .send()
        .await
        .unwrap()
}

/// Opens the login form and POSTs it, as a browser does; returns the response.
async fn post_login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let form = login_form(app).await;
    post_login_with(app, &form, email, password).await
}

fn cookie_named(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn session_cookie(res: &reqwest::Response) -> Option<String> {
    cookie_named(res, "ccs_monitor")
}

async fn sign_in(app: &TestApp) -> MonitorClient<'_> {
    let admin = app.admin().await;
    let res = post_login(app, &admin.email, TEST_PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/monitor");
    let set_cookie = session_cookie(&res).expect("a session cookie");
    let pair = set_cookie.split(';').next().unwrap().to_owned();
    MonitorClient { app, cookie: pair }
}

impl MonitorClient<'_> {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.app
            .client
            .get(self.app.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    async fn page(&self, path: &str) -> String {
        let res = self.get(path).await;
        assert_eq!(res.status(), 200, "GET {path}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        res.text().await.unwrap()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url(path))
            .header("cookie", &self.cookie)
            .header("content-type", FORM)
            .body(form_body(form))
            .send()
            .await
            .unwrap()
    }

    /// The CSRF token the overview's forms carry.
    async fn csrf(&self) -> String {
        csrf_field(&self.page("/monitor").await)
    }
}

fn run_id_from(res: &reqwest::Response) -> Uuid {
    let location = res.headers()["location"].to_str().unwrap();
    location
        .strip_prefix("/monitor/runs/")
        .expect("redirect to the run")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn monitor_pages_redirect_anonymous_visitors_to_the_login_page() {
    let app = spawn_app().await;
    for path in [
        "/monitor",
        "/monitor/runs?task=prune_expired_data",
        "/monitor/rates",
        "/monitor/runs/00000000-0000-0000-0000-000000000000",
    ] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 303, "{path}");
        assert_eq!(res.headers()["location"], "/monitor/login", "{path}");
    }
    let res = app
        .client
        .post(app.url("/monitor/tasks/prune_expired_data/run"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    // An API bearer token is not a monitor session, nor is a forged cookie.
    let admin = app.admin().await;
    let res = app.get_with_token("/monitor", &admin.token).await;
    assert_eq!(res.status(), 303);
    let res = app
        .client
        .get(app.url("/monitor"))
        .header("cookie", "ccs_monitor=not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);

    let login = app.get("/monitor/login").await;
    assert_eq!(login.status(), 200);
    let body = login.text().await.unwrap();
    assert!(body.contains("<form") && body.contains(r#"name="password""#));
    let css = app.get("/monitor/static/monitor.css").await;
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}

#[tokio::test]
async fn an_admin_logs_in_with_a_strict_http_only_cookie_and_sees_the_overview() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let res = post_login(&app, &admin.email, TEST_PASSWORD).await;
    assert_eq!(res.status(), 303);
    let cookie = session_cookie(&res).unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/monitor", "Max-Age="] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    // `test` is plain HTTP; production sets Secure (unit-tested in session.rs).
    assert!(!cookie.contains("Secure"), "{cookie}");

    let monitor = sign_in(&app).await;
    let page = monitor.page("/monitor").await;
    for expected in [
        "Overview",
        "Queue depth",
        "Dead",
        "fetch_rates",
        "finalize_conversions",
        "prune_expired_data",
        "0 30 3 * * *",
        "Run now",
        r#"http-equiv="refresh" content="10""#,
        "No rates have been fetched yet.",
    ] {
        assert!(page.contains(expected), "missing {expected:?}");
    }
    assert!(
        !page.contains(
            cookie
                .split(';')
                .next()
                .unwrap()
                .trim_start_matches("ccs_monitor=")
        )
    );
}

#[tokio::test]
async fn partners_and_wrong_passwords_are_refused_with_the_same_message() {
    let app = spawn_app().await;
    let partner = app.create_user(Role::Partner).await;
    let admin = app.admin().await;

    let as_partner = post_login(&app, &partner.email, TEST_PASSWORD).await;
    assert_eq!(as_partner.status(), 403);
    assert!(session_cookie(&as_partner).is_none());
    let partner_page = as_partner.text().await.unwrap();

    let wrong = post_login(&app, &admin.email, "not the password at all").await;
    assert_eq!(wrong.status(), 401);
    assert!(session_cookie(&wrong).is_none());
    let wrong_page = wrong.text().await.unwrap();

    let message = "Those credentials do not open the monitor.";
    assert!(partner_page.contains(message) && wrong_page.contains(message));
    // The email is echoed back into the form, escaped.
    let res = post_login(&app, "<b>x</b>@example.com", "whatever-password").await;
    let body = res.text().await.unwrap();
    assert!(body.contains("&lt;b&gt;x&lt;/b&gt;@example.com") && !body.contains("<b>x</b>"));
}

/// Refresh tokens stored for a user.
async fn refresh_tokens_of(app: &TestApp, user: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE user_id = $1")
        .bind(user)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_monitor_login_stores_no_refresh_token() {
    let app = spawn_app().await;
    // Each created over the API's login, which stores one refresh token.
    let admin = app.admin().await;
    let partner = app.create_user(Role::Partner).await;
    assert_eq!(refresh_tokens_of(&app, admin.id).await, 1);

    let res = post_login(&app, &admin.email, TEST_PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert!(session_cookie(&res).is_some());
    let as_partner = post_login(&app, &partner.email, TEST_PASSWORD).await;
    assert_eq!(as_partner.status(), 403);

    // The session lives in its cookie's access token alone.
    assert_eq!(refresh_tokens_of(&app, admin.id).await, 1);
    assert_eq!(refresh_tokens_of(&app, partner.id).await, 1);
}

#[tokio::test]
async fn the_monitor_login_is_throttled_like_the_api_login() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let attempts = app.settings.auth.max_failed_logins;
    for _ in 0..attempts {
        let res = post_login(&app, &admin.email, "not the password at all").await;
        assert_eq!(res.status(), 401);
    }
    let res = post_login(&app, &admin.email, TEST_PASSWORD).await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn posts_without_a_valid_csrf_token_are_forbidden() {
    let app = spawn_app().await;
    let monitor = sign_in(&app).await;
    let csrf = monitor.csrf().await;

    let missing = monitor
        .post("/monitor/tasks/prune_expired_data/run", &[])
        .await;
    assert_eq!(missing.status(), 403);
    assert!(
        missing.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let wrong = monitor
        .post(
            "/monitor/tasks/prune_expired_data/run",
            &[("csrf", &"0".repeat(64))],
        )
        .await;
    assert_eq!(wrong.status(), 403);
    // Another session's token does not work either.
    let other = sign_in(&app).await;
    let foreign = monitor
        .post(
            "/monitor/tasks/prune_expired_data/run",
            &[("csrf", &other.csrf().await)],
        )
        .await;
    assert_eq!(foreign.status(), 403);
    let logout = monitor.post("/monitor/logout", &[("csrf", "nope")]).await;
    assert_eq!(logout.status(), 403);

    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM task_runs")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(none, 0, "a refused form must not enqueue anything");

    let ok = monitor
        .post("/monitor/tasks/prune_expired_data/run", &[("csrf", &csrf)])
        .await;
    assert_eq!(ok.status(), 303);
}

#[tokio::test]
async fn run_now_enqueues_a_run_and_shows_its_page() {
    let app = spawn_app().await;
    let monitor = sign_in(&app).await;
    let csrf = monitor.csrf().await;

    let res = monitor
        .post("/monitor/tasks/prune_expired_data/run", &[("csrf", &csrf)])
        .await;
    assert_eq!(res.status(), 303);
    let id = run_id_from(&res);
    let run = tasks::store::get(&app.db, id).await.unwrap().unwrap();
    assert_eq!(run.task_name, "prune_expired_data");
    assert_eq!(run.state, TaskState::Queued);

    let page = monitor.page(&format!("/monitor/runs/{id}")).await;
    assert!(page.contains("Run of prune_expired_data") && page.contains("queued"));
    assert!(page.contains(&id.to_string()));

    // A worker picks it up: the page shows how it ended.
    let stats = app.run_pending_jobs().await;
    assert_eq!(stats.succeeded, 1);
    let page = monitor.page(&format!("/monitor/runs/{id}")).await;
    assert!(
        page.contains("succeeded"),
        "the run page does not say it succeeded"
    );

    let unknown = monitor
        .post("/monitor/tasks/no_such_task/run", &[("csrf", &csrf)])
        .await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn a_dead_run_is_retried_from_the_monitor() {
    let app = spawn_app().await;
    let monitor = sign_in(&app).await;
    let csrf = monitor.csrf().await;
    let registry = app.tasks.clone();
    let run = tasks::enqueue(
        &app.task_queue,
        &registry,
        "prune_expired_data",
        serde_json::json!({}),
    )
    .await
    .unwrap();
    sqlx::query(
        "UPDATE task_runs SET state = 'dead', attempts = max_attempts, finished_at = now(),
             last_error = 'provider <timeout> after 3 attempts' WHERE id = $1",
    )
    .bind(run.id)
    .execute(&app.db)
    .await
    .unwrap();

    let overview = monitor.page("/monitor").await;
    assert!(overview.contains("Recent failures"));
    assert!(overview.contains("provider &lt;timeout&gt; after 3 attempts"));
    let dead = monitor.page("/monitor/runs?state=dead").await;
    assert!(dead.contains(&format!("/monitor/runs/{}/retry", run.id)));

    let res = monitor
        .post(
            &format!("/monitor/runs/{}/retry", run.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert_eq!(run_id_from(&res), run.id);
    let again = tasks::store::get(&app.db, run.id).await.unwrap().unwrap();
    assert_eq!(again.state, TaskState::Queued);
    assert_eq!(again.attempts, 0);

    // A queued run is not retryable: a conflict page, not a crash.
    let res = monitor
        .post(
            &format!("/monitor/runs/{}/retry", run.id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status(), 409);
}

#[tokio::test]
async fn the_runs_list_filters_and_pages() {
    let app = spawn_app().await;
    let monitor = sign_in(&app).await;
    let registry = app.tasks.clone();
    for _ in 0..27 {
        tasks::enqueue(
            &app.task_queue,
            &registry,
            "prune_expired_data",
            serde_json::json!({}),
        )
        .await
        .unwrap();
    }
    tasks::enqueue(
        &app.task_queue,
        &registry,
        "fetch_rates",
        serde_json::json!({}),
    )
    .await
    .unwrap();

    let page = monitor
        .page("/monitor/runs?task=prune_expired_data&state=queued")
        .await;
    assert_eq!(page.matches(">prune_expired_data</a>").count(), 25);
    assert!(!page.contains(">fetch_rates</a></td>"));
    assert!(page.contains(r#"<option value="prune_expired_data" selected>"#));
    let older = page
        .split("href=\"")
        .find(|s| s.contains("before="))
        .and_then(|s| s.split('"').next())
        .expect("a link to older runs")
        .replace("&amp;", "&");
    assert!(older.contains("task=prune_expired_data") && older.contains("state=queued"));
    let second = monitor.page(&older).await;
    assert_eq!(second.matches(">prune_expired_data</a>").count(), 2);

    let any = monitor.page("/monitor/runs?task=&state=").await;
    assert!(any.contains(">fetch_rates</a>"));
    assert_eq!(monitor.get("/monitor/runs?state=bogus").await.status(), 400);
}

#[tokio::test]
async fn the_rates_page_lists_currencies_and_draws_charts() {
    let app = spawn_app().await;
    app.seed_currencies().await;
    app.clock.advance(chrono::TimeDelta::days(-3));
    app.store_rates(&[("USD", "1.08"), ("GBP", "0.85")]).await;
    app.clock.advance(chrono::TimeDelta::days(2));
    app.store_rates(&[("USD", "1.10"), ("GBP", "0.85")]).await;
    app.clock.advance(chrono::TimeDelta::days(1));
    let monitor = sign_in(&app).await;

    let page = monitor.page("/monitor/rates?currency=USD&days=30").await;
    for expected in [
        "USD",
        "GBP",
        ">1.1</td>",
        ">0.85</td>",
        // The exact lowest value in the chart's title; the axis has rounded ticks.
        "lowest 1.08",
        "frankfurter",
        "<svg",
        "USD per EUR over 30 days",
        "Run durations",
    ] {
        assert!(page.contains(expected), "missing {expected:?}");
    }
    assert!(page.contains(r#"<option value="USD" selected>"#));
    assert!(page.contains("<path class=\"line\""));

    // Older than rates.max_age_secs: the overview and the rates page say so.
    app.clock.advance(chrono::TimeDelta::seconds(
        i64::try_from(app.settings.rates.max_age_secs).unwrap() + 60,
    ));
    // The session's short-lived token has expired meanwhile.
    assert_eq!(monitor.get("/monitor").await.status(), 303);
    let monitor = sign_in(&app).await;
    let overview = monitor.page("/monitor").await;
    assert!(overview.contains("Stale rates"), "no stale warning");
    // Where to look next: an outage is only stale rates; a broken fetch is a failed run.
    assert!(
        overview.contains("No provider reachable (an outage)"),
        "{overview}"
    );
    assert!(overview.contains("frankfurter"));
    let rates = monitor.page("/monitor/rates").await;
    assert!(rates.contains("Stale rates"));
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_app().await;
    let monitor = sign_in(&app).await;
    let csrf = monitor.csrf().await;
    let res = monitor.post("/monitor/logout", &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/monitor/login");
    let cleared = session_cookie(&res).unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    // The old cookie no longer opens anything, even if a browser kept it.
    assert_eq!(monitor.get("/monitor").await.status(), 303);
}

#[tokio::test]
async fn seeded_rates_show_as_never_fetched_with_a_year_of_chart() {
    let app = spawn_app().await;
    currency_conversion::seed::run(&app.state, &app.rates)
        .await
        .unwrap();
    let monitor = sign_in(&app).await;

    let overview = monitor.page("/monitor").await;
    assert!(overview.contains(">seed</td>"), "no seed provider row");
    assert!(
        overview.contains("never fetched (embedded ECB history"),
        "seed rates shown as fetched"
    );
    assert!(!overview.contains("last fetched"));

    let rates = monitor.page("/monitor/rates?currency=USD&days=365").await;
    assert!(rates.contains("from seed"), "provider not named");
    assert!(rates.contains("never fetched"));
    assert!(rates.contains("<path class=\"line\""), "no chart line");
}

#[tokio::test]
async fn the_overview_explains_its_numbers_and_schedules_in_words() {
    let app = spawn_app().await;
    let monitor = sign_in(&app).await;
    let page = monitor.page("/monitor").await;
    for expected in [
        "What do these numbers mean?",
        "Messages in the Redis stream",
        "delivered to a worker and not yet acknowledged",
        "recorded in PostgreSQL as queued",
        // The test settings' schedules, next to their expressions.
        "every minute",
    ] {
        assert!(page.contains(expected), "missing {expected:?}");
    }
    assert!(page.contains("<table class=\"stack\">"));
}

#[tokio::test]
async fn the_login_form_refuses_a_post_without_its_own_csrf_token() {
    let app = spawn_app().await;
    let admin = app.admin().await;

    // A page elsewhere posting the form: no pre-login cookie, no token.
    let res = app
        .client
        .post(app.url("/monitor/login"))
        .header("content-type", FORM)
        .body(form_body(&[
            ("email", &admin.email),
            ("password", TEST_PASSWORD),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(session_cookie(&res).is_none());
    // The form comes back, ready to use: a new nonce cookie and its token.
    let retry = LoginForm {
        cookie: cookie_named(&res, "ccs_monitor_login")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned(),
        csrf: csrf_field(&res.text().await.unwrap()),
    };

    // The token of another browser's form does not fit this browser's cookie.
    let mine = login_form(&app).await;
    let theirs = login_form(&app).await;
    let crossed = LoginForm {
        cookie: mine.cookie.clone(),
        csrf: theirs.csrf.clone(),
    };
    let res = post_login_with(&app, &crossed, &admin.email, TEST_PASSWORD).await;
    assert_eq!(res.status(), 403);
    assert!(session_cookie(&res).is_none());

    // Refused posts are not failed logins: the throttle did not count them.
    for form in [&retry, &mine] {
        let res = post_login_with(&app, form, &admin.email, TEST_PASSWORD).await;
        assert_eq!(res.status(), 303);
        assert!(session_cookie(&res).is_some());
        let cleared = cookie_named(&res, "ccs_monitor_login").expect("the nonce is cleared");
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
    }
}

#[tokio::test]
async fn an_active_session_slides_past_the_token_lifetime_up_to_its_maximum() {
    let app = spawn_app_with(|s| s.auth.monitor_session_max_secs = 3600).await;
    let ttl = i64::try_from(app.settings.auth.access_token_ttl_secs).unwrap();
    let mut monitor = sign_in(&app).await;
    let csrf = monitor.csrf().await;

    // The self-refreshing page keeps asking; each answer past the first minute renews the token.
    let mut elapsed = 0;
    let mut renewals = 0;
    while elapsed + ttl * 2 / 3 < 3600 {
        app.clock.advance(chrono::TimeDelta::seconds(ttl * 2 / 3));
        elapsed += ttl * 2 / 3;
        let res = monitor.get("/monitor").await;
        assert_eq!(res.status(), 200, "{elapsed} s after the login");
        let renewed = session_cookie(&res).expect("a renewed cookie");
        assert!(renewed.contains("HttpOnly") && renewed.contains("SameSite=Strict"));
        monitor.cookie = renewed.split(';').next().unwrap().to_owned();
        renewals += 1;
    }
    assert!(
        elapsed > ttl && renewals > 2,
        "{elapsed} s, {renewals} renewals"
    );
    // The forms of a page from before the renewals still post.
    assert_eq!(csrf, monitor.csrf().await);

    // An hour after the login (and the leeway on expiry) the session ends, however busy the
    // admin.
    let leeway = i64::try_from(app.settings.auth.leeway_secs).unwrap();
    app.clock
        .advance(chrono::TimeDelta::seconds(3600 - elapsed - 1));
    assert_eq!(monitor.get("/monitor").await.status(), 200);
    app.clock.advance(chrono::TimeDelta::seconds(leeway + 2));
    let res = monitor.get("/monitor").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/monitor/login");

    // An idle session still ends with its token.
    let idle = sign_in(&app).await;
    app.clock.advance(chrono::TimeDelta::seconds(ttl + 60));
    assert_eq!(idle.get("/monitor").await.status(), 303);
}

#[tokio::test]
async fn logging_out_ends_the_tokens_a_session_was_renewed_from() {
    let app = spawn_app().await;
    let mut monitor = sign_in(&app).await;
    let before = monitor.cookie.clone();
    app.clock.advance(chrono::TimeDelta::seconds(120));
    let res = monitor.get("/monitor").await;
    monitor.cookie = session_cookie(&res)
        .expect("a renewed cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = monitor.csrf().await;
    let res = monitor.post("/monitor/logout", &[("csrf", &csrf)]).await;
    assert_eq!(res.status(), 303);
    assert_eq!(monitor.get("/monitor").await.status(), 303);
    // The token from before the renewal has not expired, yet it opens nothing either.
    let old = MonitorClient {
        app: &app,
        cookie: before,
    };
    assert_eq!(old.get("/monitor").await.status(), 303);
}

/// The `<tr>` of the overview whose `attribute` is `value`.
fn table_row<'h>(html: &'h str, attribute: &str, value: &str) -> &'h str {
    let start = html
        .find(&format!("{attribute}=\"{value}\""))
        .unwrap_or_else(|| panic!("no row {attribute}={value}"));
    let end = start + html[start..].find("</tr>").unwrap();
    &html[start..end]
}

#[tokio::test]
async fn the_overview_shows_each_rates_sources_health_and_every_exclusion() {
    use currency_conversion::rates;
    let (app, s, day) = crate::consensus::five_sources_with("-mon", |st| {
        st.rates.breaker_threshold = 1;
    })
    .await;
    crate::consensus::publish(&s, day, ["1.1", "1.1002", "1.0998"]);
    rates::fetch_and_store(&app.rates).await.unwrap();
    // A source excluded for most of its currencies is named once per cycle in the log.
    let warned = |name: &str| {
        crate::helpers::logged_lines_with("disagrees with the others")
            .into_iter()
            .filter(|l| l.contains(&format!("\"{name}\"")))
            .count()
    };
    assert_eq!(warned("scaled-mon"), 1);
    assert_eq!(warned("inverted-mon"), 1);
    assert_eq!(warned("honest1-mon"), 0);

    // A minute on, the inverted source goes down: its breaker opens after one failure.
    app.clock.advance(chrono::TimeDelta::minutes(1));
    s.inverted.answer(500, "{}".into());
    rates::fetch_and_store(&app.rates).await.unwrap();

    let monitor = sign_in(&app).await;
    let html = monitor.page("/monitor").await;
    assert!(html.contains("Rates sources"), "{html}");
    let honest = table_row(&html, "data-source", "honest1-mon");
    assert!(honest.contains("answered"), "{honest}");
    assert!(honest.contains("closed"), "{honest}");
    // In the first cycle no two CHF values agreed: every one was excluded, honest ones too.
    assert!(honest.contains("CHF ×1</td>"), "{honest}");
    let inverted = table_row(&html, "data-source", "inverted-mon");
    assert!(inverted.contains("failed"), "{inverted}");
    assert!(inverted.contains("500"), "the error: {inverted}");
    assert!(inverted.contains(">open<"), "its breaker: {inverted}");
    // Excluded by the first cycle's outcomes (still in force within the last day).
    assert!(inverted.contains("CHF ×1, GBP ×1, USD ×1"), "{inverted}");
    let scaled = table_row(&html, "data-source", "scaled-mon");
    assert!(scaled.contains("answered"), "{scaled}");
    // Both cycles' outcomes excluded it for CHF and USD.
    assert!(scaled.contains("CHF ×2, USD ×2"), "{scaled}");

    // The newest exclusion first: the second cycle's median is that of four values.
    let exclusion = table_row(&html, "data-exclusion", "scaled-mon/USD");
    assert!(
        exclusion.contains("<code>1.21</code>"),
        "the value: {exclusion}"
    );
    assert!(
        exclusion.contains("<code>1.1001</code>"),
        "the median: {exclusion}"
    );
    assert!(
        exclusion.contains("bps from the median 1.1001, beyond max_deviation_bps 100"),
        "{exclusion}"
    );
    assert!(
        html.contains("data-exclusion=\"inverted-mon/GBP\""),
        "{html}"
    );
}
