//! Tick arithmetic: DST changes, month ends, intervals and catch-up.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Europe::Brussels;
use serde_json::Map;

use super::*;

fn cadence(cron: Option<&str>, every: Option<u64>, tz: Option<&str>) -> Cadence {
    Cadence::parse(&Schedule {
        cron: cron.map(str::to_owned),
        every_seconds: every,
        timezone: tz.map(str::to_owned),
        catchup: Catchup::Last,
        params: Map::new(),
    })
    .unwrap()
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

/// The ticks after `from` up to `until`.
fn ticks(c: &Cadence, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<String> {
    let mut out = Vec::new();
    let mut t = from;
    while let Some(next) = c.after(t) {
        if next > until {
            break;
        }
        out.push(next.with_timezone(&Brussels).to_rfc3339());
        t = next;
    }
    out
}

#[test]
fn spring_forward_fixed_time_fires_once_after_the_gap() {
    let c = cadence(Some("30 2 * * *"), None, Some("Europe/Brussels"));
    assert_eq!(
        ticks(&c, utc(2026, 3, 27, 12, 0, 0), utc(2026, 3, 30, 12, 0, 0)),
        [
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00",
        ]
    );
}

#[test]
fn fall_back_fixed_time_fires_once_at_its_first_occurrence() {
    let c = cadence(Some("30 2 * * *"), None, Some("Europe/Brussels"));
    assert_eq!(
        ticks(&c, utc(2026, 10, 24, 12, 0, 0), utc(2026, 10, 26, 12, 0, 0)),
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    );
}

#[test]
fn wildcard_times_skip_the_gap_and_repeat_in_the_doubled_hour() {
    let c = cadence(Some("*/30 * * * *"), None, Some("Europe/Brussels"));
    assert_eq!(
        ticks(&c, utc(2026, 3, 29, 0, 15, 0), utc(2026, 3, 29, 1, 45, 0)),
        [
            "2026-03-29T01:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T03:30:00+02:00",
        ]
    );
    assert_eq!(
        ticks(&c, utc(2026, 10, 25, 0, 15, 0), utc(2026, 10, 25, 1, 45, 0)),
        [
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T02:30:00+01:00",
        ]
    );
}

#[test]
fn month_ends() {
    let day31 = cadence(Some("0 0 31 * *"), None, None);
    let from = utc(2026, 1, 1, 0, 0, 0);
    let until = utc(2026, 12, 31, 23, 0, 0);
    let days: Vec<String> = ticks(&day31, from, until)
        .iter()
        .map(|t| t.get(5..10).unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        days,
        [
            "01-31", "03-31", "05-31", "07-31", "08-31", "10-31", "12-31"
        ],
        "months without a 31st are skipped"
    );
    let last = cadence(Some("0 0 L * *"), None, None);
    let days: Vec<String> = ticks(&last, from, utc(2028, 3, 1, 12, 0, 0))
        .iter()
        .map(|t| t.get(..10).unwrap_or_default().to_owned())
        .filter(|d| d.ends_with("-02-28") || d.ends_with("-02-29") || d.ends_with("-04-30"))
        .collect();
    assert_eq!(
        days,
        [
            "2026-02-28",
            "2026-04-30",
            "2027-02-28",
            "2027-04-30",
            "2028-02-29"
        ],
        "`L` is each month's last day, leap years included"
    );
}

#[test]
fn six_fields_have_seconds_first_and_seven_are_refused() {
    let c = cadence(Some("15 */10 * * * *"), None, None);
    assert_eq!(
        c.after(utc(2026, 5, 1, 8, 0, 0)),
        Some(utc(2026, 5, 1, 8, 0, 15))
    );
    assert_eq!(
        c.after(utc(2026, 5, 1, 8, 0, 15)),
        Some(utc(2026, 5, 1, 8, 10, 15))
    );
    let seven = Cadence::parse(&Schedule {
        cron: Some("0 0 0 * * * 2027".to_owned()),
        every_seconds: None,
        timezone: None,
        catchup: Catchup::Last,
        params: Map::new(),
    });
    assert!(seven.is_err());
}

#[test]
fn intervals_stay_on_the_grid_of_the_last_fire() {
    let c = cadence(None, Some(90), None);
    let last = utc(2026, 5, 1, 8, 0, 0);
    assert_eq!(c.after(last), Some(utc(2026, 5, 1, 8, 1, 30)));
    let now = utc(2026, 5, 1, 8, 10, 0);
    assert_eq!(c.at_or_before(now, last), Some(utc(2026, 5, 1, 8, 9, 0)));
    assert_eq!(c.after_now(now, last), Some(utc(2026, 5, 1, 8, 10, 30)));
    assert_eq!(
        c.at_or_before(last, last),
        Some(last),
        "the grid's start counts"
    );
    assert_eq!(
        c.at_or_before(last - chrono::Duration::seconds(1), last),
        None
    );
}

#[test]
fn first_tick_by_catchup() {
    #[track_caller]
    fn case(
        c: &Cadence,
        now: DateTime<Utc>,
        last: Option<DateTime<Utc>>,
        catchup: Catchup,
        want: DateTime<Utc>,
    ) {
        assert_eq!(
            c.first_tick(now, last, catchup),
            Some(want),
            "{catchup:?} after {last:?}"
        );
    }
    let every = cadence(None, Some(60), None);
    let now = utc(2026, 5, 1, 12, 0, 0) + chrono::Duration::microseconds(1_234_567);
    let last = utc(2026, 5, 1, 8, 0, 30);
    let start = utc(2026, 5, 1, 12, 0, 1) + chrono::Duration::milliseconds(234);
    case(
        &every,
        now,
        None,
        Catchup::All,
        start + chrono::Duration::seconds(60),
    );
    case(
        &every,
        now,
        Some(last),
        Catchup::None,
        utc(2026, 5, 1, 12, 0, 30),
    );
    case(
        &every,
        now,
        Some(last),
        Catchup::Last,
        utc(2026, 5, 1, 8, 1, 30),
    );
    case(
        &every,
        now,
        Some(last),
        Catchup::All,
        utc(2026, 5, 1, 8, 1, 30),
    );

    let hourly = cadence(Some("0 * * * *"), None, None);
    case(&hourly, now, None, Catchup::Last, utc(2026, 5, 1, 13, 0, 0));
    case(
        &hourly,
        now,
        Some(utc(2026, 5, 1, 9, 0, 0)),
        Catchup::None,
        utc(2026, 5, 1, 13, 0, 0),
    );
    case(
        &hourly,
        now,
        Some(utc(2026, 5, 1, 9, 0, 0)),
        Catchup::Last,
        utc(2026, 5, 1, 10, 0, 0),
    );
}

#[test]
fn due_ticks_by_catchup() {
    let hourly = cadence(Some("0 * * * *"), None, None);
    let next = utc(2026, 5, 1, 10, 0, 0);
    let now = utc(2026, 5, 1, 12, 30, 0);
    assert_eq!(
        hourly.due(next, now, Catchup::All, 100),
        [next, utc(2026, 5, 1, 11, 0, 0), utc(2026, 5, 1, 12, 0, 0)]
    );
    assert_eq!(
        hourly.due(next, now, Catchup::All, 2).len(),
        2,
        "capped per round"
    );
    assert_eq!(
        hourly.due(next, now, Catchup::Last, 100),
        [utc(2026, 5, 1, 12, 0, 0)]
    );
    assert_eq!(
        hourly.due(next, now, Catchup::None, 100),
        [utc(2026, 5, 1, 12, 0, 0)]
    );
    assert!(
        hourly.due(now, next, Catchup::All, 100).is_empty(),
        "nothing due yet"
    );
}

#[test]
fn the_documented_special_fields_parse() {
    let monday = cadence(Some("0 9 * * 1#2"), None, None);
    assert_eq!(
        monday.after(utc(2026, 6, 1, 0, 0, 0)),
        Some(utc(2026, 6, 8, 9, 0, 0)),
        "the second Monday of June 2026"
    );
    let nearest = cadence(Some("0 9 15W * *"), None, None);
    assert_eq!(
        nearest.after(utc(2026, 8, 1, 0, 0, 0)),
        Some(utc(2026, 8, 14, 9, 0, 0)),
        "15 August 2026 is a Saturday: the Friday before"
    );
}
