//! The ECB's reference-rate CSV files, read as a stream of days: `eurofxref-hist.csv` (every
//! working day since 1999, newest first, ISO dates, `N/A` for currencies not quoted that day,
//! including dead ones such as CYP) and `eurofxref-daily.csv` (one day, dates like
//! `30 October 2026`, a space after each comma). Both have a trailing comma on every line.
//! Rates are against EUR. This module only reads; loading the days into storage is the
//! caller's job.

use std::io::BufRead;

use chrono::NaiveDate;

use crate::currencies::code::CurrencyCode;
use crate::money::Rate;

/// One day of the file: its date and the quotes published that day (units per 1 EUR).
pub type EcbDay = (NaiveDate, Vec<(CurrencyCode, Rate)>);

/// A problem in the file; line numbers start at 1 (the header).
#[derive(Debug, thiserror::Error)]
pub enum EcbCsvError {
    /// The underlying reader failed.
    #[error("line {line}: read error: {source}")]
    Io {
        /// Line being read.
        line: usize,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line that does not follow the format.
    #[error("line {line}: {message}")]
    Malformed {
        /// Offending line.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// Iterator over the days of an ECB CSV file. Created by [`EcbCsvReader::new`], which reads the
/// header; each item is one data line. Blank lines are skipped; `N/A` and empty cells are
/// skipped; anything else that is not a positive decimal is an error for that line, and reading
/// can continue with the next one.
pub struct EcbCsvReader<R> {
    input: R,
    /// Currency of each column after the date; `None` for the empty column after the trailing
    /// comma.
    columns: Vec<Option<CurrencyCode>>,
    line: usize,
    buf: String,
}

impl<R: BufRead> EcbCsvReader<R> {
    /// Reads and checks the header (`Date,USD,JPY,…,`).
    pub fn new(mut input: R) -> Result<Self, EcbCsvError> {
        let mut header = String::new();
        let read = input
            .read_line(&mut header)
            .map_err(|source| EcbCsvError::Io { line: 1, source })?;
        let malformed = |message: String| EcbCsvError::Malformed { line: 1, message };
        if read == 0 {
            return Err(malformed("empty file: no header".into()));
        }
        let header = header.trim_start_matches('\u{feff}');
        let mut cells = header.trim_end_matches(['\r', '\n']).split(',');
        if cells.next().map(str::trim) != Some("Date") {
            return Err(malformed("header does not start with `Date`".into()));
        }
        let cells: Vec<&str> = cells.map(str::trim).collect();
        let last = cells.len().saturating_sub(1);
        let columns = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| match CurrencyCode::parse(cell) {
                Ok(code) => Ok(Some(code)),
                Err(_) if cell.is_empty() && i == last => Ok(None),
                Err(_) => Err(malformed(format!(
                    "column {} header `{cell}` is not a currency code",
                    i + 2
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if columns.iter().all(Option::is_none) {
            return Err(malformed("no currency columns".into()));
        }
        Ok(Self {
            input,
            columns,
            line: 1,
            buf: String::new(),
        })
    }

    /// The currencies of the file, in column order.
    pub fn currencies(&self) -> impl Iterator<Item = CurrencyCode> + '_ {
        self.columns.iter().flatten().copied()
    }

    fn parse_line(&self, text: &str) -> Result<EcbDay, EcbCsvError> {
        let malformed = |message: String| EcbCsvError::Malformed {
            line: self.line,
            message,
        };
        let mut cells = text.split(',').map(str::trim);
        let date_text = cells.next().unwrap_or_default();
        let date = parse_date(date_text)
            .ok_or_else(|| malformed(format!("`{}` is not a date", shorten(date_text))))?;
        let cells: Vec<&str> = cells.collect();
        // Tolerate a line without the trailing comma when the header has one.
        let trailing_optional = matches!(self.columns.last(), Some(None))
            && !text.trim_end().ends_with(',')
            && cells.len() + 1 == self.columns.len();
        if cells.len() != self.columns.len() && !trailing_optional {
            return Err(malformed(format!(
                "{} cells after the date, the header has {}",
                cells.len(),
                self.columns.len()
            )));
        }
        let mut quotes = Vec::with_capacity(cells.len());
        for (cell, column) in cells.iter().zip(&self.columns) {
            let Some(currency) = column else {
                if !cell.is_empty() {
                    return Err(malformed(format!(
                        "value `{}` in the column after the last currency",
                        shorten(cell)
                    )));
                }
                continue;
            };
            if cell.is_empty() || *cell == "N/A" {
                continue;
            }
            let rate = Rate::parse(cell).map_err(|_| {
                malformed(format!(
                    "{currency}: `{}` is not a positive decimal",
                    shorten(cell)
                ))
            })?;
            quotes.push((*currency, rate));
        }
        Ok((date, quotes))
    }
}

impl<R: BufRead> Iterator for EcbCsvReader<R> {
    type Item = Result<EcbDay, EcbCsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line += 1;
            match self.input.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    return Some(Err(EcbCsvError::Io {
                        line: self.line,
                        source,
                    }));
                }
            }
            let text = self.buf.trim_end_matches(['\r', '\n']);
            if text.trim().is_empty() {
                continue;
            }
            return Some(self.parse_line(text));
        }
    }
}

/// ISO dates (`2026-10-30`, the history file) or English long dates (`30 October 2026`, the
/// daily file).
fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%d %B %Y"))
        .ok()
}

fn shorten(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Cursor};

    use super::*;

    /// The ECB files committed under `data/` (the whole history and one daily file). A fresh
    /// clone has them; nothing outside the repository is read.
    fn open(path: &str) -> EcbCsvReader<BufReader<std::fs::File>> {
        let path = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
        let file = std::fs::File::open(&path)
            .unwrap_or_else(|e| panic!("committed ECB fixture {path} cannot be read: {e}"));
        EcbCsvReader::new(BufReader::new(file)).unwrap()
    }

    fn c(s: &str) -> CurrencyCode {
        CurrencyCode::parse(s).unwrap()
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn quote<'a>(day: &'a EcbDay, code: &str) -> Option<&'a Rate> {
        day.1.iter().find(|(q, _)| *q == c(code)).map(|(_, r)| r)
    }

    fn read(text: &str) -> Result<Vec<EcbDay>, EcbCsvError> {
        EcbCsvReader::new(Cursor::new(text.to_owned()))?.collect()
    }

    #[test]
    fn history_file_reads_every_day_newest_first() {
        let reader = open("data/ecb-eurofxref-hist.csv");
        assert_eq!(reader.currencies().count(), 41);
        assert_eq!(reader.currencies().nth(3), Some(c("CYP")));
        let days: Vec<EcbDay> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(days.len(), 7126);
        let newest = &days[0];
        let oldest = &days[days.len() - 1];
        assert_eq!(newest.0, d(2026, 10, 30));
        assert_eq!(oldest.0, d(1999, 1, 4));
        assert!(days.windows(2).all(|w| w[0].0 > w[1].0), "not newest first");
        assert_eq!(quote(newest, "USD").unwrap().to_string(), "1.1172");
        assert_eq!(quote(newest, "ISK").unwrap().to_string(), "136");
        // Dead currencies are N/A today and quoted in 1999.
        assert!(quote(newest, "CYP").is_none());
        assert_eq!(quote(oldest, "CYP").unwrap().to_string(), "0.58231");
        assert_eq!(quote(oldest, "ROL").unwrap().to_string(), "13111");
        assert_eq!(newest.1.len(), 29);
    }

    #[test]
    fn daily_file_reads_long_dates_and_spaced_cells() {
        let days: Vec<EcbDay> = open("data/ecb-eurofxref-daily.csv")
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(days.len(), 1);
        assert_eq!(days[0].0, d(2026, 10, 30));
        assert_eq!(days[0].1.len(), 29);
        assert_eq!(quote(&days[0], "GBP").unwrap().to_string(), "0.8338");
        assert_eq!(quote(&days[0], "IDR").unwrap().to_string(), "20275.17");
    }

    #[test]
    fn malformed_lines_are_errors_with_line_numbers_and_reading_continues() {
        let text = "Date,USD,JPY,\n\
                    2024-01-03,1.09,N/A,\n\
                    2024-01-02,abc,160,\n\
                    2024-01-01,1.1,\n\
                    yesterday,1.1,160,\n\
                    \n\
                    2023-12-29,-1,160,\n\
                    2023-12-28,0,160,\n\
                    2023-12-27,1.1,160,9,\n\
                    2023-12-26,1.1,160\r\n";
        let items: Vec<_> = EcbCsvReader::new(Cursor::new(text)).unwrap().collect();
        let errors: Vec<String> = items
            .iter()
            .filter_map(|i| i.as_ref().err().map(ToString::to_string))
            .collect();
        assert_eq!(
            errors,
            [
                "line 3: USD: `abc` is not a positive decimal",
                "line 4: 2 cells after the date, the header has 3",
                "line 5: `yesterday` is not a date",
                "line 7: USD: `-1` is not a positive decimal",
                "line 8: USD: `0` is not a positive decimal",
                "line 9: 4 cells after the date, the header has 3",
            ]
        );
        let ok: Vec<&EcbDay> = items.iter().filter_map(|i| i.as_ref().ok()).collect();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].1.len(), 1, "N/A skipped");
        // Last line had no trailing comma and a CRLF ending.
        assert_eq!(ok[1].0, d(2023, 12, 26));
        assert_eq!(ok[1].1.len(), 2);
    }

    #[test]
    fn bad_headers_are_refused() {
        for (text, needle) in [
            ("", "no header"),
            ("When,USD,\n", "`Date`"),
            ("Date,USD,Japanese Yen,\n", "`Japanese Yen`"),
            ("Date,\n", "no currency columns"),
        ] {
            let err = read(text).unwrap_err().to_string();
            assert!(err.starts_with("line 1:") && err.contains(needle), "{err}");
        }
    }
}
