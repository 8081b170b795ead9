//! Cron expressions in words for the monitor ("every 15 minutes", "daily at 03:30 UTC"), shown
//! next to the expression so an admin need not decode the six fields. Only the shapes the
//! service's schedules use are described; anything else gets `None` and the expression alone.

/// Describes a six-field expression (`sec min hour day-of-month month day-of-week`, UTC).
pub fn describe(expression: &str) -> Option<String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let [sec, min, hour, dom, month, dow] = fields.as_slice() else {
        return None;
    };
    if (*dom, *month, *dow) != ("*", "*", "*") {
        return None;
    }
    let every = |field: &str| -> Option<u32> {
        match field {
            "*" => Some(1),
            _ => field.strip_prefix("*/")?.parse().ok().filter(|n| *n > 0),
        }
    };
    let fixed = |field: &str, max: u32| field.parse::<u32>().ok().filter(|n| *n < max);
    let unit = |n: u32, one: &str, many: &str| {
        if n == 1 {
            format!("every {one}")
        } else {
            format!("every {n} {many}")
        }
    };
    match (fixed(sec, 60), fixed(min, 60), fixed(hour, 24)) {
        (None, _, _) if *min == "*" && *hour == "*" => Some(unit(every(sec)?, "second", "seconds")),
        (Some(0), None, None) if *hour == "*" => Some(unit(every(min)?, "minute", "minutes")),
        (Some(0), Some(0), None) => Some(unit(every(hour)?, "hour", "hours")),
        (Some(0), Some(m), None) if *hour == "*" => Some(format!("hourly at minute {m}")),
        (Some(0), Some(m), Some(h)) => Some(format!("daily at {h:02}:{m:02} UTC")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn the_services_schedules_read_as_words() {
        for (cron, words) in [
            ("0 */15 * * * *", "every 15 minutes"),
            ("0 * * * * *", "every minute"),
            ("0 30 3 * * *", "daily at 03:30 UTC"),
            ("*/10 * * * * *", "every 10 seconds"),
            ("* * * * * *", "every second"),
            ("0 0 * * * *", "every hour"),
            ("0 0 */6 * * *", "every 6 hours"),
            ("0 5 * * * *", "hourly at minute 5"),
        ] {
            assert_eq!(describe(cron).as_deref(), Some(words), "{cron}");
        }
    }

    #[test]
    fn shapes_it_does_not_know_get_no_words() {
        for cron in [
            "0 0 12 * * MON",
            "0 0 12 1 * *",
            "0 */0 * * * *",
            "0 61 * * * *",
            "nonsense",
            "0 1-5 * * * *",
            "",
        ] {
            assert_eq!(describe(cron), None, "{cron}");
        }
    }
}
