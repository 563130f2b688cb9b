//! Follow-up runs on the dashboard: per rule on the rules page (7 and 30 days), per
//! contact on its page (each run with its steps and why each ended as it did).

use maud::{Markup, html};

use super::layout::{state_badge, time};
use super::locale::Locale;
use crate::store::runs::{RunCounts, RunView};

/// Entered, active, goal reached, completed, cancelled and the goal rate, per rule with
/// runs, over the last 7 and 30 days.
pub fn rule_runs_card(_l: &Locale, week: &[RunCounts], month: &[RunCounts]) -> Markup {
    let rate = |c: &RunCounts| c.goal_rate().map(|r| format!("{:.0} %", r * 100.0)).unwrap_or_else(|| "–".into());
    html! {
        section.card.wide #rule-runs {
            h2 { "Follow-up runs" }
            @if month.is_empty() {
                p.muted { "No rule started a run in the last 30 days. A rule with a goal, a reentry policy or a skip_if starts one each time it fires." }
            } @else {
                div.scroll { table #rule-runs-table {
                    thead {
                        tr { th scope="col" rowspan="2" { "Rule" } th scope="colgroup" colspan="6" { "7 days" } th scope="colgroup" colspan="6" { "30 days" } }
                        tr { @for _ in 0..2 {
                            th.num scope="col" { "Entered" } th.num scope="col" { "Active" } th.num scope="col" { "Goal reached" }
                            th.num scope="col" { "Completed" } th.num scope="col" { "Cancelled" } th.num scope="col" { "Goal rate" }
                        } }
                    }
                    tbody { @for m in month {
                        @let w = week.iter().find(|w| w.rule_id == m.rule_id).cloned().unwrap_or_default();
                        tr {
                            th scope="row" { (m.rule_id) }
                            @for c in [&w, m] {
                                td.num { (c.entered) } td.num { (c.active) } td.num { (c.goal_reached) }
                                td.num { (c.completed) } td.num { (c.cancelled) } td.num { (rate(c)) }
                            }
                        }
                    } }
                } }
                p.muted { "Goal rate: runs that reached their goal among those that ended. Runs are counted by the day they started." }
            }
        }
    }
}

/// A contact's runs, newest first, each with its steps.
pub fn contact_runs_card(l: &Locale, runs: &[RunView]) -> Markup {
    html! {
        section.card.wide #runs {
            h2 { "Follow-up runs" }
            @if runs.is_empty() { p.muted { "No run in the last 90 days." } }
            ol.timeline { @for r in runs {
                li {
                    strong { (r.rule_id) } " " (state_badge(l, r.state.as_str()))
                    " started " (time(l, r.started_at))
                    @if let Some(end) = r.ended_at { " · ended " (time(l, end)) }
                    @if let Some(why) = &r.reason { " · " span.muted { (why) } }
                    ul.plain { @for s in &r.steps {
                        li {
                            (state_badge(l, &s.state)) " "
                            a href={"/ui/actions/" (s.job_id)} { (s.action_type) } ", due " (time(l, s.due_at))
                            @if let Some(why) = &s.reason { " · " span.muted { (why) } }
                        }
                    } }
                }
            } }
        }
    }
}
