//! Follow-up runs on the dashboard: per rule on the rules page (7 and 30 days), per
//! contact on its page (each run with its steps and why each ended as it did).

use maud::{Markup, html};

use super::contact_page::RuleNames;
use super::describe;
use super::layout::state_badge;
use super::locale::Locale;
use super::text::T;
use crate::store::runs::{RunCounts, RunView};

/// Entered, active, goal reached, completed, cancelled and the goal rate, per rule with
/// runs, over the last 7 and 30 days.
pub fn rule_runs_card(l: &Locale, week: &[RunCounts], month: &[RunCounts]) -> Markup {
    let rate = |c: &RunCounts| c.goal_rate().map(|r| format!("{:.0} %", r * 100.0)).unwrap_or_else(|| "–".into());
    html! {
        section.card.wide #rule-runs {
            h2 { (l.t(T::RnTitle)) }
            @if month.is_empty() {
                p.muted { (l.t(T::RnNoneForRule)) }
            } @else {
                div.scroll { table #rule-runs-table {
                    thead {
                        tr { th scope="col" rowspan="2" { (l.t(T::Rule)) } th scope="colgroup" colspan="6" { (l.t(T::Ov7Days)) } th scope="colgroup" colspan="6" { (l.t(T::Rn30Days)) } }
                        tr { @for _ in 0..2 {
                            th.num scope="col" { (l.t(T::RnEntered)) } th.num scope="col" { (l.t(T::RnActive)) } th.num scope="col" { (l.t(T::RnGoalReached)) }
                            th.num scope="col" { (l.t(T::RnCompleted)) } th.num scope="col" { (l.t(T::RnCancelled)) } th.num scope="col" { (l.t(T::RnGoalRate)) }
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
                p.muted { (l.t(T::RnGoalRateHint)) }
            }
        }
    }
}

/// A contact's runs, newest first, each with its steps.
pub fn contact_runs_card(l: &Locale, runs: &[RunView], rules: &RuleNames) -> Markup {
    html! {
        section.card.wide #runs {
            h2 { (l.t(T::RnTitle)) }
            @if runs.is_empty() { p.muted { (l.t(T::RnNoneForContact)) } }
            ol.timeline { @for r in runs {
                li {
                    strong { (rules.show(&r.rule_id)) } " " (state_badge(l, r.state.as_str()))
                    (l.f(T::RnStarted, &[&l.datetime(r.started_at)]))
                    @if let Some(end) = r.ended_at { (l.f(T::RnEnded, &[&l.datetime(end)])) }
                    @if let Some(why) = &r.reason { " · " span.muted { (why) } }
                    ul.plain { @for s in &r.steps {
                        li {
                            (state_badge(l, &s.state)) " "
                            a href={"/ui/actions/" (s.job_id)} { (describe::action_named(l, &s.action_type)) } ", " (l.f(T::CtDue, &[&l.datetime(s.due_at)]))
                            @if let Some(why) = &s.reason { " · " span.muted { (why) } }
                        }
                    } }
                }
            } }
        }
    }
}
