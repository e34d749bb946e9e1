//! `--junit PATH`: a testsuite per tutorial, a testcase per block (`classname` = the tutorial,
//! `name` = the block id, `file`/`line` attributes, the block's output as `system-out`);
//! failures carry the diff. GitHub Actions and GitLab both read this format.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::diff;
use crate::runner::{Status, TutorialResult};

pub fn report(results: &[TutorialResult]) -> Report {
    let mut report = Report::new("tutor");
    for t in results {
        let mut suite = TestSuite::new(t.path.display().to_string());
        suite.set_time(t.duration);
        for step in &t.steps {
            for b in &step.blocks {
                let mut status = match b.status {
                    Status::Passed => TestCaseStatus::success(),
                    Status::Skipped => TestCaseStatus::skipped(),
                    Status::Failed => TestCaseStatus::non_success(NonSuccessKind::Failure),
                    Status::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
                };
                if matches!(b.status, Status::Failed | Status::Error | Status::Skipped)
                    && let Some(reason) = &b.reason
                {
                    status.set_message(reason.as_str());
                }
                if let Some(m) = &b.mismatch {
                    status.set_description(diff::unified(m, false));
                } else if matches!(b.status, Status::Failed | Status::Error) && !b.output.is_empty() {
                    status.set_description(b.output.as_str());
                }
                let mut case = TestCase::new(b.id.as_str(), status);
                case.set_classname(t.path.display().to_string());
                case.set_time(b.duration);
                case.extra.insert("file".into(), t.path.display().to_string().into());
                case.extra.insert("line".into(), b.line.to_string().into());
                if b.status == Status::Passed
                    && let Some(reason) = &b.reason
                {
                    // A passing case has no message; `passed after 3 tries, 1.9 s` goes here.
                    case.add_property(quick_junit::Property::new("note", reason.as_str()));
                }
                if b.tries > 1 {
                    case.add_property(quick_junit::Property::new("tries", b.tries.to_string()));
                }
                if step.setup {
                    case.add_property(quick_junit::Property::new("setup", format!("step {}", step.number)));
                }
                if !b.output.is_empty() {
                    case.set_system_out(b.output.as_str());
                }
                suite.add_test_case(case);
            }
        }
        if !t.errors.is_empty() {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(t.errors.join("; "));
            let mut case = TestCase::new("set-up and teardown", status);
            case.set_classname(t.path.display().to_string());
            case.extra.insert("file".into(), t.path.display().to_string().into());
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report
}

/// Write the JUnit XML to `path` (creating parent folders).
pub fn write(results: &[TutorialResult], path: &std::path::Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let xml = report(results).to_string().map_err(std::io::Error::other)?;
    std::fs::write(path, xml)
}
