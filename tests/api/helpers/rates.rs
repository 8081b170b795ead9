//! Currencies and rates: what most tests need stored before they can price anything.

use currency_conversion::settings::Settings;

use super::{TestApp, spawn_app_with};

/// EUR-based rates most conversion tests price against (units per 1 EUR).
pub const EUR_RATES: &[(&str, &str)] = &[("USD", "1.1"), ("GBP", "0.85"), ("JPY", "163.5")];

/// An app (settings adjusted by `customise`) with the default currencies and [`EUR_RATES`]
/// stored: ready to quote and convert.
pub async fn spawn_app_with_rates(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let app = spawn_app_with(customise).await;
    app.seed_currencies().await;
    app.store_rates(EUR_RATES).await;
    app
}

impl TestApp {
    /// The default currency set (ECB's currencies plus EGP), as `seed` creates it.
    pub async fn seed_currencies(&self) {
        currency_conversion::currencies::service::seed_defaults(&self.db, self.clock.now())
            .await
            .unwrap();
    }

    /// Stores EUR-based rates as a Frankfurter publication at the current (test) time.
    pub async fn store_rates(&self, rates: &[(&str, &str)]) {
        use currency_conversion::currencies::CurrencyCode;
        use currency_conversion::money::Rate;
        use currency_conversion::rates::provider::{ProviderKind, Snapshot};
        let snapshot = Snapshot {
            provider: ProviderKind::Frankfurter,
            base: CurrencyCode::parse("EUR").unwrap(),
            as_of: self.clock.now(),
            quotes: rates
                .iter()
                .map(|(c, r)| (CurrencyCode::parse(c).unwrap(), Rate::parse(r).unwrap()))
                .collect(),
            ignored_codes: 0,
            missing: Vec::new(),
        };
        let known = currency_conversion::rates::service::known_currencies(&self.rates)
            .await
            .unwrap();
        currency_conversion::rates::service::store_snapshot(
            &self.rates,
            snapshot,
            &known,
            &[],
            Vec::new(),
        )
        .await
        .unwrap();
    }
}
