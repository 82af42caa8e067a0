//! What a run of the kit found, and its three renderings: a summary for people, JSON for
//! machines, JUnit XML for CI systems.

use std::fmt::Write;
use std::path::PathBuf;
use std::time::Duration;

use handrail::host::Description;
use serde_json::json;

use crate::checks::Check;

/// How one check came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The handler honours the clause.
    Passed,
    /// The handler breaks the clause; the text says how.
    Failed(String),
    /// The check does not apply; the text says why.
    Skipped(String),
}

/// One check's verdict and the observations behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The check.
    pub check: Check,
    /// Its verdict.
    pub verdict: Verdict,
    /// What the kit saw (actions run and how they ended).
    pub observations: Vec<String>,
}

/// The outcome of a run of the kit over one handler.
#[derive(Debug, Clone)]
pub struct Report {
    /// The registered handler id.
    pub handler: String,
    /// The artifact checked.
    pub artifact: PathBuf,
    /// What the handler said about itself; `None` when it could not be loaded.
    pub description: Option<Description>,
    /// One result per check, in catalogue order.
    pub results: Vec<CheckResult>,
    /// How long the run took.
    pub duration: Duration,
}

impl Report {
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.failed().is_empty()
    }

    /// The checks that failed.
    pub fn failed(&self) -> Vec<Check> {
        self.with(|v| matches!(v, Verdict::Failed(_)))
    }

    /// The checks that were skipped.
    pub fn skipped(&self) -> Vec<Check> {
        self.with(|v| matches!(v, Verdict::Skipped(_)))
    }

    /// The result of one check.
    pub fn result(&self, check: Check) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.check == check)
    }

    fn with(&self, pick: impl Fn(&Verdict) -> bool) -> Vec<Check> {
        self.results
            .iter()
            .filter(|r| pick(&r.verdict))
            .map(|r| r.check)
            .collect()
    }

    /// A summary for people: one line per check, the reason under each failure and skip.
    pub fn to_human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "conformance of {} ({})",
            self.handler,
            self.artifact.display()
        );
        for r in &self.results {
            let (mark, why) = match &r.verdict {
                Verdict::Passed => ("pass", None),
                Verdict::Failed(why) => ("FAIL", Some(why)),
                Verdict::Skipped(why) => ("skip", Some(why)),
            };
            let _ = writeln!(out, "  {mark}  {}  {}", r.check.id(), r.check.name());
            if let Some(why) = why {
                let _ = writeln!(out, "        {why}");
            }
            if matches!(r.verdict, Verdict::Failed(_)) {
                let _ = writeln!(out, "        contract: {}", r.check.clause());
            }
        }
        let _ = writeln!(
            out,
            "{} passed, {} failed, {} skipped in {:.1} s",
            self.results.len() - self.failed().len() - self.skipped().len(),
            self.failed().len(),
            self.skipped().len(),
            self.duration.as_secs_f64()
        );
        out
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let checks: Vec<_> = self
            .results
            .iter()
            .map(|r| {
                let (status, message) = match &r.verdict {
                    Verdict::Passed => ("passed", None),
                    Verdict::Failed(m) => ("failed", Some(m)),
                    Verdict::Skipped(m) => ("skipped", Some(m)),
                };
                json!({
                    "id": r.check.id(),
                    "name": r.check.name(),
                    "status": status,
                    "message": message,
                    "rationale": r.check.rationale(),
                    "clause": r.check.clause(),
                    "observations": r.observations,
                })
            })
            .collect();
        json!({
            "handler": self.handler,
            "artifact": self.artifact,
            "description": self.description.as_ref().map(|d| json!({
                "id": d.id,
                "actions": d.actions,
                "contract": [d.contract.0, d.contract.1],
            })),
            "passed": self.passed(),
            "failed": self.failed().iter().map(|c| c.id()).collect::<Vec<_>>(),
            "durationSecs": self.duration.as_secs_f64(),
            "checks": checks,
        })
    }

    /// The report as a JUnit XML test suite: one test case per check.
    pub fn to_junit(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<testsuite name=\"handrail-conformance {}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            xml(&self.handler),
            self.results.len(),
            self.failed().len(),
            self.skipped().len(),
            self.duration.as_secs_f64()
        );
        for r in &self.results {
            let _ = write!(
                out,
                "  <testcase classname=\"{}\" name=\"{} {}\">",
                xml(&self.handler),
                r.check.id(),
                xml(r.check.name())
            );
            match &r.verdict {
                Verdict::Passed => {}
                Verdict::Failed(why) => {
                    let _ = write!(
                        out,
                        "<failure message=\"{}\">{}\ncontract: {}\n{}</failure>",
                        xml(why),
                        xml(r.check.rationale()),
                        xml(r.check.clause()),
                        xml(&r.observations.join("\n"))
                    );
                }
                Verdict::Skipped(why) => {
                    let _ = write!(out, "<skipped message=\"{}\"/>", xml(why));
                }
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("</testsuite>\n");
        out
    }
}

/// Text escaped for XML attributes and content; characters XML 1.0 cannot carry are
/// replaced.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            handler: "contoso/x:1".into(),
            artifact: "x.wasm".into(),
            description: None,
            results: vec![
                CheckResult {
                    check: Check::Describe,
                    verdict: Verdict::Passed,
                    observations: vec![],
                },
                CheckResult {
                    check: Check::ResultFiles,
                    verdict: Verdict::Failed("apply → 600 <out of phase> & \u{1}".into()),
                    observations: vec!["apply → 600".into()],
                },
                CheckResult {
                    check: Check::Cancel,
                    verdict: Verdict::Skipped("no".into()),
                    observations: vec![],
                },
            ],
            duration: Duration::from_millis(1500),
        }
    }

    #[test]
    fn junit_escapes_and_counts() {
        let xml = report().to_junit();
        assert!(xml.contains("tests=\"3\" failures=\"1\" skipped=\"1\""));
        assert!(xml.contains("&lt;out of phase&gt; &amp; \u{fffd}"));
        assert!(xml.contains("<skipped message=\"no\"/>"));
    }

    #[test]
    fn json_and_human_name_the_failed_checks() {
        let r = report();
        assert_eq!(r.to_json()["failed"], json!(["HC-002"]));
        assert!(!r.passed());
        let human = r.to_human();
        assert!(human.contains("FAIL  HC-002"), "{human}");
        assert!(human.contains("1 passed, 1 failed, 1 skipped"), "{human}");
    }
}
