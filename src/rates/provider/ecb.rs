//! The European Central Bank's daily reference rates (`eurofxref-daily.xml`): XML, EUR base,
//! no API key.

use super::*;

/// Parses the ECB's `eurofxref-daily.xml`: a `gesmes:Envelope` holding
/// `<Cube><Cube time='YYYY-MM-DD'><Cube currency='USD' rate='1.0823'/>…</Cube></Cube>`. The base
/// is always EUR. If several dated cubes are present (the 90-day file), the first (newest) is
/// used.
pub fn parse_ecb_daily_xml(body: &[u8], query: &Query<'_>) -> Result<Snapshot, ProviderError> {
    use quick_xml::events::Event;

    let malformed = |what: String| ProviderError::Malformed(what);
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut buf = Vec::new();
    let mut depth = 0usize;
    let mut saw_envelope = false;
    let mut time: Option<String> = None;
    // Set while inside the first dated cube; once it closes, later cubes are ignored.
    let mut in_first_day = false;
    let mut first_day_done = false;
    let mut rates: Vec<(String, Result<Rate, InvalidData>)> = Vec::new();

    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| {
            malformed(format!(
                "XML error at byte {}: {e}",
                reader.error_position()
            ))
        })?;
        let (start, empty) = match &event {
            Event::Start(s) => (Some(s), false),
            Event::Empty(s) => (Some(s), true),
            _ => (None, false),
        };
        if let Some(tag) = start {
            if depth == 0 {
                if tag.local_name().as_ref() != b"Envelope" {
                    return Err(malformed(
                        "not the ECB envelope (HTML or another document?)".into(),
                    ));
                }
                saw_envelope = true;
            }
            if tag.local_name().as_ref() == b"Cube" && !first_day_done {
                let mut cube_time = None;
                let mut currency = None;
                let mut rate = None;
                for attr in tag.attributes() {
                    let attr = attr.map_err(|e| malformed(format!("bad attribute: {e}")))?;
                    let value = String::from_utf8_lossy(&attr.value).into_owned();
                    match attr.key.local_name().as_ref() {
                        b"time" => cube_time = Some(value),
                        b"currency" => currency = Some(value),
                        b"rate" => rate = Some(value),
                        _ => {}
                    }
                }
                if let Some(t) = cube_time {
                    if time.is_none() {
                        time = Some(t);
                        in_first_day = !empty;
                    }
                } else if let Some(currency) = currency {
                    if in_first_day {
                        let value = rate.unwrap_or_default();
                        let parsed = Rate::parse(&value).map_err(|_| InvalidData::BadRate {
                            currency: currency.clone(),
                            value: shorten(&value),
                        });
                        rates.push((currency, parsed));
                    }
                }
            }
            if !empty {
                depth += 1;
            }
        }
        match event {
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                // Closing the dated cube (Envelope > Cube > Cube[time]) brings depth back to 2.
                if in_first_day && depth == 2 {
                    in_first_day = false;
                    first_day_done = true;
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !saw_envelope {
        return Err(malformed("empty document".into()));
    }
    if depth != 0 {
        return Err(malformed("truncated XML".into()));
    }
    let time = time.ok_or_else(|| malformed("no dated Cube".into()))?;
    let as_of = date_only_as_of(&time, query.now)?;
    build_snapshot(
        ProviderKind::Ecb,
        "EUR",
        as_of,
        rates.iter().map(|(c, r)| (c.as_str(), r.clone())),
        query,
    )
}
