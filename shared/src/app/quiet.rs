//! Which quiet hours apply to campaign traffic (issue 9 item 6): the configured default window
//! (`SMSRELAY_QUIET_HOURS`) in the *recipient's* zone. Pure: it reads no clock and no store.
//!
//! API messages never get this default: a message with `send_at` and no `quiet_hours` is the
//! caller's decision and goes at its time (`app::send`, `app::fire_scheduled` apply only the
//! message's own `quiet_hours`). Campaigns (issue 11) call [`campaign_quiet_hours`] for each step.

use crate::config::Config;
use crate::domain::{zone_for_area_code, PhoneNumber, QuietHours};
use chrono_tz::Tz;

/// The recipient's zone, first that is known: the lead's own `timezone`, else the zone of the
/// phone's NANP area code (`domain::zone_for_area_code`), else the campaign's zone, else
/// `default` (`SMSRELAY_DEFAULT_TIMEZONE`).
pub fn recipient_zone(
    lead_timezone: Option<Tz>,
    phone: &PhoneNumber,
    campaign_timezone: Option<Tz>,
    default: Tz,
) -> Tz {
    lead_timezone
        .or_else(|| zone_for_area_code(phone))
        .or(campaign_timezone)
        .unwrap_or(default)
}

/// The quiet hours of a campaign message to `phone`: the configured default window placed in
/// [`recipient_zone`]. `None` when the default window is switched off (`SMSRELAY_QUIET_HOURS=off`).
pub fn campaign_quiet_hours(
    config: &Config,
    lead_timezone: Option<Tz>,
    phone: &PhoneNumber,
    campaign_timezone: Option<Tz>,
) -> Option<QuietHours> {
    let window = config.default_quiet_hours.as_ref()?;
    Some(window.in_zone(recipient_zone(
        lead_timezone,
        phone,
        campaign_timezone,
        config.default_timezone,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};
    use chrono_tz::America;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let vars: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_lookup(|k| vars.get(k).cloned()).expect("valid configuration")
    }

    fn phone(e164: &str) -> PhoneNumber {
        PhoneNumber::parse_e164(e164).expect("number")
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    fn zone_of(e164: &str) -> Tz {
        campaign_quiet_hours(&config(&[]), None, &phone(e164), None)
            .expect("on by default")
            .timezone()
    }

    #[test]
    fn without_a_lead_zone_the_area_code_decides_212_415_808_907() {
        assert_eq!(zone_of("+12125550100"), America::New_York);
        assert_eq!(zone_of("+14155550100"), America::Los_Angeles);
        assert_eq!(zone_of("+18085550100"), chrono_tz::Pacific::Honolulu);
        assert_eq!(zone_of("+19075550100"), America::Anchorage);
    }

    #[test]
    fn a_hawaiian_recipient_gets_hawaiis_night_not_new_yorks() {
        let q = campaign_quiet_hours(&config(&[]), None, &phone("+18085550100"), None).expect("on");
        // 22:00 in Honolulu is 03:00 in New York: held until 08:00 Honolulu (18:00Z).
        assert_eq!(q.next_allowed(utc("2026-11-23T08:00:00Z")), utc("2026-11-23T18:00:00Z"));
        // 09:00 in New York is 04:00 in Honolulu: still night there.
        assert!(q.contains(utc("2026-11-23T14:00:00Z")));
    }

    #[test]
    fn the_leads_own_zone_wins_over_the_area_code_and_the_campaign() {
        let q = campaign_quiet_hours(
            &config(&[]),
            Some(America::Chicago),
            &phone("+18085550100"),
            Some(America::Denver),
        )
        .expect("on");
        assert_eq!(q.timezone(), America::Chicago);
    }

    #[test]
    fn the_campaigns_zone_is_used_when_the_number_has_no_zone() {
        // 800 is non-geographic; +44 is outside the NANP.
        for n in ["+18005550100", "+442071838750"] {
            let q = campaign_quiet_hours(&config(&[]), None, &phone(n), Some(America::Denver)).expect("on");
            assert_eq!(q.timezone(), America::Denver, "{n}");
        }
    }

    #[test]
    fn with_nothing_known_the_configured_default_zone_is_used() {
        let cfg = config(&[("SMSRELAY_DEFAULT_TIMEZONE", "Europe/London")]);
        let q = campaign_quiet_hours(&cfg, None, &phone("+18005550100"), None).expect("on");
        assert_eq!(q.timezone(), chrono_tz::Europe::London);
        let q = campaign_quiet_hours(&config(&[]), None, &phone("+18005550100"), None).expect("on");
        assert_eq!(q.timezone(), America::New_York, "the documented default zone");
    }

    #[test]
    fn the_configured_window_is_kept_and_off_switches_it_off() {
        let cfg = config(&[("SMSRELAY_QUIET_HOURS", "22:30-07:15")]);
        let q = campaign_quiet_hours(&cfg, None, &phone("+12125550100"), None).expect("on");
        assert_eq!(
            crate::domain::schedule::QuietHoursWire::from(q).start,
            "22:30",
            "the configured window, not the default one"
        );
        let off = config(&[("SMSRELAY_QUIET_HOURS", "off")]);
        assert_eq!(campaign_quiet_hours(&off, None, &phone("+12125550100"), None), None);
    }

    mod proptests {
        use super::*;
        use proptest::prelude::*;

        fn any_zone() -> impl Strategy<Value = Tz> {
            prop::sample::select(chrono_tz::TZ_VARIANTS.to_vec())
        }

        fn any_phone() -> impl Strategy<Value = PhoneNumber> {
            prop_oneof![
                (200u16..=999, 200u16..=999, 0u16..=9999).prop_map(|(a, x, l)| format!("+1{a}{x}{l:04}")),
                "\\+44[0-9]{10}",
                "\\+61[0-9]{9}",
            ]
            .prop_filter_map("valid", |raw| PhoneNumber::parse_e164(&raw).ok())
        }

        proptest! {
            #[test]
            fn the_recipient_zone_is_the_first_known_in_order(
                lead in prop::option::of(any_zone()),
                phone in any_phone(),
                campaign in prop::option::of(any_zone()),
                default in any_zone(),
            ) {
                let want = lead.or_else(|| zone_for_area_code(&phone)).or(campaign).unwrap_or(default);
                prop_assert_eq!(recipient_zone(lead, &phone, campaign, default), want);
                if let Some(l) = lead {
                    prop_assert_eq!(recipient_zone(lead, &phone, campaign, default), l);
                }
                if !phone.as_str().starts_with("+1") {
                    prop_assert_eq!(recipient_zone(None, &phone, None, default), default);
                }
            }

            #[test]
            fn a_campaign_window_keeps_its_local_times_in_the_recipients_zone(
                lead in prop::option::of(any_zone()),
                phone in any_phone(),
                at in 1_700_000_000i64..1_900_000_000,
            ) {
                let c = config(&[]);
                let q = campaign_quiet_hours(&c, lead, &phone, None).ok_or_else(|| TestCaseError::fail("on by default"))?;
                let zone = recipient_zone(lead, &phone, None, c.default_timezone);
                prop_assert_eq!(q.timezone(), zone);
                let at = DateTime::from_timestamp(at, 0).unwrap_or_default();
                let default = c.default_quiet_hours.as_ref().ok_or_else(|| TestCaseError::fail("a default"))?;
                prop_assert_eq!(q.contains(at), default.in_zone(zone).contains(at));
                prop_assert!(!q.contains(q.next_allowed(at)));
                prop_assert!(campaign_quiet_hours(&config(&[("SMSRELAY_QUIET_HOURS", "off")]), lead, &phone, None).is_none());
            }
        }
    }
}
