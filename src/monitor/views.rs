//! The monitor's HTML, as `maud` templates: every interpolated value is escaped, and nothing
//! secret (tokens, hashes, settings) is ever passed in. Pages that show live state refresh
//! themselves every [`REFRESH_SECS`] through `<meta http-equiv="refresh">`, which reloads the
//! same URL with its query string, so filters survive.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::chart::{self, Bar, format_ms};
use super::data::{Overview, RatesPage, RunFilter, RunsPage};
use super::session::MonitorSession;
use super::{CSS_PATH, LOGIN_PATH};
use crate::tasks::{TaskRun, TaskState};

/// Seconds between automatic reloads of live pages.
pub const REFRESH_SECS: u32 = 10;

const STATES: [TaskState; 6] = [
    TaskState::Queued,
    TaskState::Running,
    TaskState::Succeeded,
    TaskState::Retrying,
    TaskState::Failed,
    TaskState::Dead,
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Runs,
    Rates,
}

fn layout(
    title: &str,
    session: Option<(&MonitorSession, Section)>,
    refresh: bool,
    content: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh {
                    meta http-equiv="refresh" content=(REFRESH_SECS);
                }
                title { (title) " · Currency conversion monitor" }
                link rel="stylesheet" href=(CSS_PATH);
            }
            body {
                header.top {
                    a.brand href="/monitor" { "Monitor" }
                    @if let Some((session, active)) = session {
                        nav {
                            (nav_link("/monitor", "Overview", active == Section::Overview))
                            (nav_link("/monitor/runs", "Runs", active == Section::Runs))
                            (nav_link("/monitor/rates", "Rates", active == Section::Rates))
                        }
                        form.logout method="post" action="/monitor/logout" {
                            (csrf_field(session))
                            button.link type="submit" { "Log out" }
                        }
                    }
                }
                main { (content) }
            }
        }
    }
}

fn nav_link(href: &str, label: &str, active: bool) -> Markup {
    html! { a href=(href) class=[active.then_some("active")] { (label) } }
}

fn csrf_field(session: &MonitorSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// The login form, with a message after a refused attempt.
pub fn login_page(message: Option<&str>, email: &str, csrf: &str) -> Markup {
    layout(
        "Log in",
        None,
        false,
        html! {
            section.card.narrow {
                h1 { "Admin login" }
                @if let Some(m) = message {
                    p.alert.bad role="alert" { (m) }
                }
                form.stack method="post" action=(LOGIN_PATH) {
                    input type="hidden" name="csrf" value=(csrf);
                    label { "Email"
                        input type="email" name="email" value=(email) autocomplete="username" required autofocus;
                    }
                    label { "Password"
                        input type="password" name="password" autocomplete="current-password" required;
                    }
                    button type="submit" { "Log in" }
                }
            }
        },
    )
}

/// A page for a refused or failed request.
pub fn error_page(title: &str, message: &str) -> Markup {
    layout(
        title,
        None,
        false,
        html! {
            section.card.narrow {
                h1 { (title) }
                p { (message) }
                p { a href="/monitor" { "Back to the monitor" } }
            }
        },
    )
}

/// How long ago (or, for a future instant, in how long) `t` is from `now`, roughly.
pub fn relative(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds();
    let (n, future) = if secs < 0 {
        (-secs, true)
    } else {
        (secs, false)
    };
    let span = if n < 60 {
        format!("{n} s")
    } else if n < 3600 {
        format!("{} min", n / 60)
    } else if n < 86_400 {
        format!("{} h {} min", n / 3600, (n % 3600) / 60)
    } else {
        format!("{} d {} h", n / 86_400, (n % 86_400) / 3600)
    };
    if future {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

fn when(now: DateTime<Utc>, t: Option<DateTime<Utc>>) -> Markup {
    match t {
        Some(t) => html! {
            time datetime=(t.to_rfc3339()) title=(t.format("%Y-%m-%d %H:%M:%S UTC")) { (relative(now, t)) }
        },
        None => html! { span.muted { "—" } },
    }
}

fn badge(state: TaskState) -> Markup {
    let class = match state {
        TaskState::Succeeded => "badge ok",
        TaskState::Failed | TaskState::Dead => "badge bad",
        TaskState::Retrying => "badge warn",
        TaskState::Queued | TaskState::Running => "badge busy",
    };
    html! { span class=(class) { (state.as_str()) } }
}

fn count(value: Option<u64>) -> Markup {
    match value {
        Some(n) => html! { (n) },
        None => html! { span.muted title="Redis is unreachable" { "?" } },
    }
}

/// Percent-encodes a query-string value.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn runs_url(task: Option<&str>, state: Option<TaskState>, before: Option<uuid::Uuid>) -> String {
    let mut params = Vec::new();
    if let Some(t) = task {
        params.push(format!("task={}", encode(t)));
    }
    if let Some(s) = state {
        params.push(format!("state={}", s.as_str()));
    }
    if let Some(b) = before {
        params.push(format!("before={b}"));
    }
    if params.is_empty() {
        "/monitor/runs".to_owned()
    } else {
        format!("/monitor/runs?{}", params.join("&"))
    }
}

fn run_now_form(session: &MonitorSession, task: &str) -> Markup {
    html! {
        form.inline method="post" action=(format!("/monitor/tasks/{}/run", encode(task))) {
            (csrf_field(session))
            button.small type="submit" data-task=(task) { "Run now" }
        }
    }
}

fn retry_form(session: &MonitorSession, run: &TaskRun) -> Markup {
    html! {
        @if matches!(run.state, TaskState::Dead | TaskState::Failed) {
            form.inline method="post" action=(format!("/monitor/runs/{}/retry", run.id)) {
                (csrf_field(session))
                button.small type="submit" { "Retry" }
            }
        }
    }
}

/// When a provider's newest publication was last seen; rates from the `seed` were never
/// fetched, and saying "fetched 1 min ago" would hide that no provider has answered yet.
fn fetched_cell(now: DateTime<Utc>, provider: &str, last_seen_at: DateTime<Utc>) -> Markup {
    html! {
        @if provider == crate::rates::import::SEED_PROVIDER {
            span title="Embedded in the binary and stored by `currency-conversion seed`; no provider has been reached." {
                "never fetched (embedded ECB history, stored " (when(now, Some(last_seen_at))) ")"
            }
        } @else {
            "last fetched " (when(now, Some(last_seen_at)))
        }
    }
}

const QUEUE_DEPTH_HELP: &str = "Messages in the Redis stream: runs waiting for a worker plus runs a worker has taken and not yet finished.";
const PENDING_HELP: &str = "Of those, runs delivered to a worker and not yet acknowledged (running, or left by a worker that died: redelivered after tasks.visibility_timeout_secs).";
const QUEUED_HELP: &str = "Runs recorded in PostgreSQL as queued: due or waiting for their time, not yet started. PostgreSQL is the record; a queued run Redis lost is re-enqueued.";

/// How to tell why rates are stale: the fetch job treats "no provider reachable" as an outage (its
/// runs succeed, the log says why once per cycle) and a refused answer as a fault (failed runs).
const OUTAGE_OR_FAULT: &str = "No provider reachable (an outage) shows only here and as one log line per fetch; a provider answering something refused shows as failing fetch_rates runs under Recent failures.";

/// `/monitor`: is the service healthy, at a glance.
pub fn overview_page(session: &MonitorSession, o: &Overview) -> Markup {
    let s = &o.stats;
    let any_stale = o.providers.iter().any(|p| p.stale);
    layout(
        "Overview",
        Some((session, Section::Overview)),
        true,
        html! {
            h1 { "Overview" }
            @if o.providers.is_empty() {
                p.alert.warn role="alert" { "No rates have been fetched yet." }
            } @else if any_stale {
                p.alert.bad role="alert" {
                    "Stale rates: a provider's newest rates are older than "
                    (relative(o.now, o.now - o.max_age).trim_end_matches(" ago"))
                    ". " (OUTAGE_OR_FAULT)
                }
            }
            section.tiles {
                div.tile title=(QUEUE_DEPTH_HELP) { span.label { "Queue depth" } span.value { (count(s.queue_depth)) } }
                div.tile title=(PENDING_HELP) { span.label { "Pending" } span.value { (count(s.pending)) } }
                div.tile title=(QUEUED_HELP) { span.label { "Queued" } span.value { (s.queued) } }
                div.tile { span.label { "Running" } span.value { (s.running) } }
                div.tile.warn[s.retrying > 0] { span.label { "Retrying" } span.value { (s.retrying) } }
                div.tile.bad[s.dead > 0] { span.label { "Dead" } span.value { (s.dead) } }
                div.tile.bad[s.failed > 0] { span.label { "Failed" } span.value { (s.failed) } }
                div.tile { span.label { "Succeeded" } span.value { (s.succeeded) } }
                div.tile data-tile="quotes-locked" { span.label { "Quotes locked" } span.value { (o.quotes_locked) } }
                div.tile.bad[o.webhooks_failing > 0] data-tile="webhooks-failing" { span.label { "Webhooks failing" } span.value { (o.webhooks_failing) } }
                div.tile.bad[o.webhooks_dead > 0] data-tile="webhooks-dead" { span.label { "Webhooks dead" } span.value { (o.webhooks_dead) } }
            }
            details.help {
                summary { "What do these numbers mean?" }
                dl.details {
                    dt { "Queue depth" } dd { (QUEUE_DEPTH_HELP) }
                    dt { "Pending" } dd { (PENDING_HELP) }
                    dt { "Queued" } dd { (QUEUED_HELP) }
                    dt { "Retrying, Dead, Failed" } dd { "Runs that failed and wait for another attempt; that used up every attempt; that panicked. Their errors are under Recent failures." }
                    dt { "Webhooks failing, dead" } dd { "Deliveries to partners' endpoints that failed and wait for their next attempt; that failed on every attempt (the partner sees them in its deliveries list and can retry them)." }
                }
            }
            section.card {
                h2 { "Jobs" }
                div.scroll {
                    table.stack {
                        thead { tr { th { "Task" } th { "Schedule" } th { "Last run" } th { "Duration" } th { "Next run" } th {} } }
                        tbody {
                            @for job in &o.jobs {
                                tr data-task=(job.name) {
                                    td data-label="Task" { a href=(runs_url(Some(&job.name), None, None)) { (job.name) } }
                                    td data-label="Schedule" {
                                        @match &job.cron {
                                            Some(c) => {
                                                code { (c) }
                                                @if let Some(words) = super::cron_words::describe(c) { br; span.muted.small { (words) } }
                                            },
                                            None => span.muted { "on demand" },
                                        }
                                    }
                                    td data-label="Last run" {
                                        @match &job.last_run {
                                            Some(run) => {
                                                a href=(format!("/monitor/runs/{}", run.id)) { (badge(run.state)) }
                                                " " (when(o.now, run.finished_at.or(run.started_at).or(Some(run.queued_at))))
                                            }
                                            None => span.muted { "never" },
                                        }
                                    }
                                    td data-label="Duration" { @if let Some(ms) = job.last_run.as_ref().and_then(|r| r.duration_ms) { (format_ms(ms)) } }
                                    td data-label="Next run" { (when(o.now, job.next_fire_at)) }
                                    td { (run_now_form(session, &job.name)) }
                                }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "Rate fetches" }
                @if o.providers.is_empty() {
                    p.muted { "Nothing stored yet." }
                } @else {
                    div.scroll {
                        table {
                            thead { tr { th { "Provider" } th { "Published" } th { "Fetched" } th { "Currencies" } th { "Status" } } }
                            tbody {
                                @for p in &o.providers {
                                    tr {
                                        td { (p.provider) }
                                        td { (when(o.now, Some(p.as_of))) }
                                        td { (fetched_cell(o.now, &p.provider, p.last_seen_at)) }
                                        td { (p.currencies) " vs " (p.base) }
                                        td { @if p.stale { span.badge.bad { "stale" } } @else { span.badge.ok { "fresh" } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !o.sources.is_empty() {
                (sources_card(o))
            }
            section.card {
                h2 { "Recent failures" }
                @if o.failures.is_empty() {
                    p.muted { "No failed, dead or retrying runs." }
                } @else {
                    ul.failures {
                        @for run in &o.failures {
                            li {
                                div.row {
                                    a href=(format!("/monitor/runs/{}", run.id)) { (run.task_name) }
                                    " " (badge(run.state))
                                    " " (when(o.now, run.finished_at.or(run.started_at)))
                                    " " (retry_form(session, run))
                                }
                                @if let Some(e) = &run.last_error { pre.error { (e) } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Each of `rates.sources`: its last fetch (when, how long, its breaker, its error), its last
/// success and the currencies it was excluded for in the last day; then each exclusion.
fn sources_card(o: &Overview) -> Markup {
    html! {
        section.card data-card="rates-sources" {
            h2 { "Rates sources" }
            div.scroll {
                table.stack {
                    thead { tr { th { "Source" } th { "Last fetch" } th { "Latency" } th { "Breaker" } th { "Last success" } th { "Excluded (last 24 h)" } } }
                    tbody {
                        @for src in &o.sources {
                            tr data-source=(src.source) {
                                td data-label="Source" { (src.source) }
                                td data-label="Last fetch" {
                                    @match src.last_fetch_at {
                                        Some(t) => {
                                            @if src.last_ok { span.badge.ok { "answered" } } @else { span.badge.bad { "failed" } }
                                            " " (when(o.now, Some(t)))
                                            @if let Some(e) = &src.last_error { br; span.muted.small { (e) } }
                                        },
                                        None => span.muted { "never" },
                                    }
                                }
                                td data-label="Latency" { @if let Some(ms) = src.last_latency_ms { (format_ms(i64::from(ms))) } }
                                td data-label="Breaker" {
                                    @match src.breaker.as_deref() {
                                        Some("closed") => span.badge.ok { "closed" },
                                        Some(other) => span.badge.bad { (other) },
                                        None => span.muted { "—" },
                                    }
                                }
                                td data-label="Last success" { (when(o.now, src.last_success_at)) }
                                td data-label="Excluded (last 24 h)" {
                                    @if src.exclusions.is_empty() {
                                        span.muted { "none" }
                                    } @else {
                                        @for (i, (code, n)) in src.exclusions.iter().enumerate() {
                                            @if i > 0 { ", " }
                                            (code) " ×" (n)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Exclusions (last 24 h)" }
            @if o.exclusions.is_empty() {
                p.muted { "No source was excluded." }
            } @else {
                div.scroll {
                    table.stack {
                        thead { tr { th { "Seen" } th { "Source" } th { "Currency" } th { "Value" } th { "Median" } th { "Reason" } } }
                        tbody {
                            @for e in &o.exclusions {
                                tr data-exclusion=(format!("{}/{}", e.source, e.currency)) {
                                    td data-label="Seen" { (when(o.now, Some(e.observed_at))) @if e.last_seen_at > e.observed_at { " to " (when(o.now, Some(e.last_seen_at))) } }
                                    td data-label="Source" { (e.source) }
                                    td data-label="Currency" { (e.currency) }
                                    td data-label="Value" { code { (e.rate) } }
                                    td data-label="Median" { @if let Some(m) = &e.median { code { (m) } } }
                                    td data-label="Reason" { (e.reason) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn filter_form(page: &RunsPage) -> Markup {
    let f: &RunFilter = &page.filter;
    html! {
        form.filters method="get" action="/monitor/runs" {
            label { "Task "
                select name="task" {
                    option value="" { "any" }
                    @for name in &page.task_names {
                        option value=(name) selected[f.task.as_deref() == Some(name.as_str())] { (name) }
                    }
                }
            }
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    @for s in STATES {
                        option value=(s.as_str()) selected[f.state == Some(s)] { (s.as_str()) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
    }
}

/// `/monitor/runs`: filtered, paged run list.
pub fn runs_page(session: &MonitorSession, page: &RunsPage) -> Markup {
    let f = &page.filter;
    layout(
        "Runs",
        Some((session, Section::Runs)),
        true,
        html! {
            h1 { "Runs" }
            (filter_form(page))
            section.card {
                @if page.runs.is_empty() {
                    p.muted { "No runs match." }
                } @else {
                    div.scroll {
                        table {
                            thead { tr { th { "Task" } th { "State" } th { "Queued" } th { "Attempts" } th { "Duration" } th { "Error" } th {} } }
                            tbody {
                                @for run in &page.runs {
                                    tr {
                                        td { a href=(format!("/monitor/runs/{}", run.id)) { (run.task_name) } }
                                        td { (badge(run.state)) }
                                        td { (when(page.now, Some(run.queued_at))) }
                                        td { (run.attempts) "/" (run.max_attempts) }
                                        td { @if let Some(ms) = run.duration_ms { (format_ms(ms)) } }
                                        td.error-cell { @if let Some(e) = &run.last_error { (e) } }
                                        td { (retry_form(session, run)) }
                                    }
                                }
                            }
                        }
                    }
                }
                nav.pager {
                    @if f.before.is_some() {
                        a href=(runs_url(f.task.as_deref(), f.state, None)) { "« Newest" }
                    }
                    @if let Some(next) = page.next_before {
                        a href=(runs_url(f.task.as_deref(), f.state, Some(next))) { "Older »" }
                    }
                }
            }
        },
    )
}

/// `/monitor/runs/{id}`: everything recorded about one run.
pub fn run_page(session: &MonitorSession, run: &TaskRun, now: DateTime<Utc>) -> Markup {
    let args = serde_json::to_string_pretty(&run.args).unwrap_or_else(|_| run.args.to_string());
    layout(
        &format!("Run of {}", run.task_name),
        Some((session, Section::Runs)),
        true,
        html! {
            h1 { "Run of " (run.task_name) " " (badge(run.state)) }
            div.actions {
                (retry_form(session, run))
                (run_now_form(session, &run.task_name))
            }
            section.card {
                dl.details {
                    dt { "Run id" } dd { code { (run.id) } }
                    dt { "Attempts" } dd { (run.attempts) " of " (run.max_attempts) }
                    dt { "Scheduled for" } dd { (when(now, run.scheduled_for)) }
                    dt { "Queued" } dd { (when(now, Some(run.queued_at))) }
                    dt { "Started" } dd { (when(now, run.started_at)) }
                    dt { "Finished" } dd { (when(now, run.finished_at)) }
                    dt { "Duration" } dd { @match run.duration_ms { Some(ms) => (format_ms(ms)), None => span.muted { "—" } } }
                    dt { "Next attempt" } dd { (when(now, run.next_attempt_at)) }
                    dt { "Lease until" } dd { (when(now, run.lease_expires_at)) }
                    dt { "Worker" } dd { @match &run.worker_id { Some(w) => code { (w) }, None => span.muted { "—" } } }
                }
            }
            section.card {
                h2 { "Arguments" }
                pre { (args) }
            }
            @if let Some(e) = &run.last_error {
                section.card {
                    h2 { "Last error" }
                    pre.error { (e) }
                }
            }
        },
    )
}

fn to_f64(rate: &crate::money::Rate) -> f64 {
    rate.to_string().parse().unwrap_or(0.0)
}

/// `/monitor/rates`: the latest rate of each currency and charts.
pub fn rates_page(session: &MonitorSession, page: &RatesPage) -> Markup {
    let chart_markup = match &page.series {
        Ok(s) => {
            let points: Vec<(DateTime<Utc>, f64)> =
                s.points.iter().map(|(t, r)| (*t, to_f64(r))).collect();
            let low = s.points.iter().map(|(_, r)| r).min();
            let high = s.points.iter().map(|(_, r)| r).max();
            let (low, high) = (
                low.map(ToString::to_string).unwrap_or_default(),
                high.map(ToString::to_string).unwrap_or_default(),
            );
            chart::rate_chart(
                &format!("{} per {} over {} days", s.currency, page.pivot, page.days),
                &points,
                (&low, &high),
                s.from,
                s.to,
            )
        }
        Err(message) => html! { p.muted { (message) } },
    };
    let bars: Vec<Bar> = page
        .finished_runs
        .iter()
        .map(|r| Bar {
            label: format!(
                "{} {} at {}, took {}",
                r.task_name,
                r.state.as_str(),
                r.finished_at
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|| "?".into()),
                format_ms(r.duration_ms.unwrap_or(0))
            ),
            at: r.finished_at,
            value_ms: r.duration_ms.unwrap_or(0),
            ok: r.state == TaskState::Succeeded,
        })
        .collect();
    layout(
        "Rates",
        Some((session, Section::Rates)),
        true,
        html! {
            h1 { "Rates" }
            @match &page.latest {
                Some(l) => {
                    @if l.stale {
                        p.alert.bad role="alert" { "Stale rates: the newest rates were published " (relative(page.now, l.as_of)) "." }
                    }
                    p.muted {
                        "Rates per 1 " (page.pivot) " from " (l.provider) ", published " (when(page.now, Some(l.as_of)))
                        ", " (fetched_cell(page.now, &l.provider, l.last_seen_at)) "."
                    }
                }
                None => p.alert.warn role="alert" { "No rates have been fetched yet." },
            }
            section.card {
                h2 { "Chart" }
                form.filters method="get" action="/monitor/rates" {
                    label { "Currency "
                        select name="currency" {
                            @for line in &page.lines {
                                @if line.code != page.pivot {
                                    option value=(line.code) selected[page.currency == Some(line.code)] { (line.code) }
                                }
                            }
                        }
                    }
                    label { "Days "
                        input type="number" name="days" min="1" max=(super::data::MAX_DAYS) value=(page.days);
                    }
                    button type="submit" { "Show" }
                }
                (chart_markup)
            }
            section.card {
                h2 { "Run durations" }
                p.muted.small { "Recent finished runs, oldest on the left; green succeeded, red failed. Hover a bar for its task, time and duration." }
                (chart::duration_chart("Duration of recent finished runs, oldest first", &bars))
            }
            section.card {
                h2 { "Supported currencies" }
                div.scroll {
                    table {
                        thead { tr { th { "Code" } th { "Name" } th.num { "Per 1 " (page.pivot) } th { "Since" } } }
                        tbody {
                            @for line in &page.lines {
                                tr {
                                    td { a href=(format!("/monitor/rates?currency={}&days={}", line.code, page.days)) { (line.code) } }
                                    td { (line.name) }
                                    td.num { @match &line.rate { Some(r) => (r), None => span.muted { "not quoted" } } }
                                    td { (when(page.now, line.since)) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now: DateTime<Utc> = "2026-01-02T00:00:00Z".parse().unwrap();
        assert_eq!(
            relative(now, now - chrono::TimeDelta::seconds(5)),
            "5 s ago"
        );
        assert_eq!(
            relative(now, now + chrono::TimeDelta::minutes(3)),
            "in 3 min"
        );
        assert_eq!(
            relative(now, now - chrono::TimeDelta::hours(25)),
            "1 d 1 h ago"
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("fetch_rates"), "fetch_rates");
        assert_eq!(encode("a&b=c d"), "a%26b%3Dc%20d");
        assert_eq!(
            runs_url(Some("x y"), Some(TaskState::Dead), None),
            "/monitor/runs?task=x%20y&state=dead"
        );
    }

    #[test]
    fn durations_are_readable() {
        assert_eq!(format_ms(350), "350 ms");
        assert_eq!(format_ms(1500), "1.5 s");
        assert_eq!(format_ms(125_000), "2 min 5 s");
    }
}
