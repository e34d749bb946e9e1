//! The runner end to end on the host backend, with hand-built tutorials.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::testing::{console, shell, tutorial, with_steps};
use super::*;
use crate::backend::BackendKind;
use crate::tutorial::{BlockKind, Tutorial};

async fn go_with(t: Tutorial, opts: RunOptions, steps: StepRange, cancel: Cancel) -> TutorialResult {
    let snaps = tempfile::tempdir().unwrap();
    let p = match prepare(t, Some(BackendKind::Host), None, steps, Some(snaps.path())) {
        Ok(p) => p,
        Err(e) => panic!("prepare failed: {e:?}"),
    };
    run_all(vec![p], RunOptions { jobs: 1, ..opts }, Arc::new(Silent), cancel).await.remove(0)
}

async fn go(t: Tutorial, opts: RunOptions) -> TutorialResult {
    go_with(t, opts, StepRange::default(), Cancel::default()).await
}

fn statuses(r: &TutorialResult) -> Vec<(String, Status)> {
    r.blocks().map(|b| (b.id.clone(), b.status)).collect()
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|r| !r.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[tokio::test]
async fn state_persists_between_blocks_and_steps() {
    let t = with_steps(vec![
        vec![console("a", &[("export A=1", ""), ("mkdir -p d && cd d", "")])],
        vec![console("b", &[("echo $A ${PWD##*/}", "1 d")])],
    ]);
    let r = go(t, RunOptions::default()).await;
    assert_eq!(statuses(&r), vec![("a".into(), Status::Passed), ("b".into(), Status::Passed)], "{r:#?}");
    assert_eq!(r.status(), Status::Passed);
}

#[tokio::test]
async fn a_mismatch_fails_with_a_diff_and_stops_the_tutorial() {
    let t = tutorial(&[&["echo surprise", "true"], &["true"]]);
    let r = go(t, RunOptions::default()).await;
    assert_eq!(
        statuses(&r),
        vec![("s1-1".into(), Status::Failed), ("s1-2".into(), Status::Skipped), ("s2-1".into(), Status::Skipped)]
    );
    let first = r.blocks().next().unwrap();
    let m = first.mismatch.as_ref().expect("a mismatch");
    assert_eq!(m.expected, "$ echo surprise");
    assert!(m.actual.contains("surprise\n") || m.actual.ends_with("surprise"), "{m:?}");
    assert_eq!(r.status(), Status::Failed);
}

#[tokio::test]
async fn keep_going_runs_the_rest() {
    let t = tutorial(&[&["echo surprise", "true"]]);
    let r = go(t, RunOptions { keep_going: true, ..Default::default() }).await;
    assert_eq!(statuses(&r), vec![("s1-1".into(), Status::Failed), ("s1-2".into(), Status::Passed)]);
}

#[tokio::test]
async fn skip_and_other_backend_blocks_are_skipped_with_a_reason() {
    let mut t = tutorial(&[&["false", "false", "true"]]);
    t.steps[0].blocks[0].attrs.skip = true;
    t.steps[0].blocks[1].attrs.backend = Some(BackendKind::Kind);
    let r = go(t, RunOptions::default()).await;
    let b: Vec<_> = r.blocks().collect();
    assert_eq!(b[0].status, Status::Skipped);
    assert_eq!(b[0].reason.as_deref(), Some("marked skip"));
    assert_eq!(b[1].status, Status::Skipped);
    assert_eq!(b[1].reason.as_deref(), Some("only runs on the kind backend"));
    assert_eq!(b[2].status, Status::Passed);
}

#[tokio::test]
async fn step_selection_runs_only_the_chosen_steps() {
    let t = tutorial(&[&["true"], &["true"], &["true"]]);
    let r =
        go_with(t, RunOptions::default(), StepRange { from: Some(2), to: Some(3), setup: false }, Cancel::default())
            .await;
    let steps: Vec<usize> = r.steps.iter().map(|s| s.number).collect();
    assert_eq!(steps, vec![2, 3]);
}

#[tokio::test]
async fn exit_attribute_and_failing_earlier_command() {
    let mut t = with_steps(vec![vec![
        console("ok", &[("true", ""), ("(exit 3)", "")]),
        console("bad", &[("false", ""), ("true", "")]),
    ]]);
    t.steps[0].blocks[0].attrs.exit = 3;
    let r = go(t, RunOptions { keep_going: true, ..Default::default() }).await;
    let b: Vec<_> = r.blocks().collect();
    assert_eq!(b[0].status, Status::Passed, "{:?}", b[0]);
    assert_eq!(b[1].status, Status::Failed);
    assert!(b[1].reason.as_deref().unwrap().contains("exited with status 1"), "{:?}", b[1].reason);
}

#[tokio::test]
async fn timeout_kills_the_process_group_and_is_an_error() {
    let pidfile = tempfile::NamedTempFile::new().unwrap();
    let cmd = format!("sleep 1000 & echo $! > {}; wait", pidfile.path().display());
    let mut t = with_steps(vec![vec![console("slow", &[(&cmd, "")])]]);
    t.steps[0].blocks[0].attrs.timeout = Some(Duration::from_millis(300));
    let started = Instant::now();
    let r = go(t, RunOptions::default()).await;
    let b = r.blocks().next().unwrap();
    assert_eq!(b.status, Status::Error);
    assert_eq!(b.reason.as_deref(), Some("timed out after 300ms"));
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid: i32 = std::fs::read_to_string(pidfile.path()).unwrap().trim().parse().unwrap();
    assert!(!alive(pid), "sleep {pid} survived the timeout");
}

#[tokio::test]
async fn retry_runs_until_the_output_matches() {
    let counter = tempfile::NamedTempFile::new().unwrap();
    let path = counter.path().display();
    let cmd = format!(
        "n=$(( $(cat {path} 2>/dev/null || echo 0) + 1 )); echo $n > {path}; [ $n -ge 3 ] && echo ready || echo 'not yet'"
    );
    let mut t = with_steps(vec![vec![console("converge", &[(&cmd, "ready")])]]);
    t.steps[0].blocks[0].attrs.retry = Some(Duration::from_secs(20));
    let r = go(t, RunOptions::default()).await;
    let b = r.blocks().next().unwrap();
    assert_eq!((b.status, b.tries), (Status::Passed, 3), "{b:?}");
}

#[tokio::test]
async fn retry_gives_up_after_its_duration_with_the_last_diff() {
    let mut t = with_steps(vec![vec![console("never", &[("echo no", "yes")])]]);
    t.steps[0].blocks[0].attrs.retry = Some(Duration::from_millis(600));
    let r = go(t, RunOptions::default()).await;
    let b = r.blocks().next().unwrap();
    assert_eq!(b.status, Status::Failed);
    assert!(b.tries >= 2, "{b:?}");
    assert!(b.reason.as_deref().unwrap().contains("tries"), "{:?}", b.reason);
    assert!(b.mismatch.is_some());
}

#[tokio::test]
async fn bg_blocks_run_alongside_and_are_stopped_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mut server = shell("server", &format!("echo $$ > {}; exec sleep 1000", pidfile.display()));
    server.attrs.bg = true;
    let wait = format!(
        "for i in $(seq 100); do [ -s {0} ] && break; sleep 0.05; done; kill -0 $(cat {0}) && echo up",
        pidfile.display()
    );
    let t = with_steps(vec![vec![server, console("check", &[(&wait, "up")])]]);
    let r = go(t, RunOptions::default()).await;
    assert_eq!(statuses(&r), vec![("server".into(), Status::Passed), ("check".into(), Status::Passed)], "{r:#?}");
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(!alive(pid), "bg process {pid} survived the tutorial");
}

#[tokio::test]
async fn file_blocks_are_written_before_the_steps_commands() {
    let mut f = shell("f", "hello file\n");
    f.kind = BlockKind::File("conf/x.txt".into());
    let t = with_steps(vec![vec![console("cat", &[("cat conf/x.txt", "hello file")]), f]]);
    let r = go(t, RunOptions::default()).await;
    assert_eq!(statuses(&r), vec![("cat".into(), Status::Passed)], "{r:#?}");
}

#[tokio::test]
async fn a_file_block_never_writes_through_a_symlink_out_of_the_work_directory() {
    let outside = tempfile::tempdir().unwrap();
    let link = format!("ln -s {} linkdir", outside.path().display());
    let mut f = shell("f", "escaped\n");
    f.kind = BlockKind::File("linkdir/x.txt".into());
    let t = with_steps(vec![vec![console("link", &[(&link, "")])], vec![f, console("after", &[("true", "")])]]);
    let r = go(t, RunOptions::default()).await;
    assert!(!outside.path().join("x.txt").exists(), "written outside the work directory");
    let f = r.blocks().find(|b| b.id == "f").expect("the file block is reported");
    assert_eq!(f.status, Status::Error);
    let reason = f.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains(
            "file=linkdir/x.txt: `linkdir/x.txt` leads out of the work directory through a symbolic link (`linkdir`)"
        ),
        "{reason}"
    );
}

#[tokio::test]
async fn sh_blocks_need_a_snapshot_and_update_mode_records_one() {
    let snaps = tempfile::tempdir().unwrap();
    let t = with_steps(vec![vec![shell("greet", "echo hi; echo err >&2\n")]]);
    let run = |t: Tutorial, update: bool| {
        let p = prepare(t, Some(BackendKind::Host), None, StepRange::default(), Some(snaps.path())).ok().unwrap();
        run_all(vec![p], RunOptions { jobs: 1, update, ..Default::default() }, Arc::new(Silent), Cancel::default())
    };
    let r = run(t.clone(), false).await.remove(0);
    let b = r.blocks().next().unwrap();
    assert_eq!((b.status, b.reason.as_deref()), (Status::Failed, Some("no snapshot (run with --update)")));
    let r = run(t.clone(), true).await.remove(0);
    assert_eq!(r.status(), Status::Passed);
    let path = crate::snapshot::snapshot_path(&snaps.path().join("t"), "greet");
    assert_eq!(r.updated, vec![path.clone()]);
    let snap = crate::snapshot::read(&path).unwrap().unwrap();
    assert!(snap.body.contains("hi\nerr\n"), "{snap:?}");
    let r = run(t, false).await.remove(0);
    assert_eq!(r.status(), Status::Passed, "{r:#?}");
    assert!(r.updated.is_empty());
}

#[tokio::test]
async fn update_mode_rewrites_console_blocks_in_place_and_never_records_errors() {
    let dir = tempfile::tempdir().unwrap();
    let md = dir.path().join("t.md");
    let source = "# T\n\n## One\n\n```console\n$ echo new\nold\n```\n\n```console\n$ echo x; exit 1\nkeep\n```\n";
    std::fs::write(&md, source).unwrap();
    let mut a = console("a", &[("echo new", "old")]);
    let start = source.find("$ echo new").unwrap();
    a.body_span = start..start + "$ echo new\nold\n".len();
    let mut b = console("b", &[("echo x; exit 1", "keep")]);
    let start = source.find("$ echo x").unwrap();
    b.body_span = start..start + "$ echo x; exit 1\nkeep\n".len();
    let mut t = with_steps(vec![vec![a, b]]);
    t.path = md.clone();
    t.source = source.into();
    let r = go(t, RunOptions { update: true, keep_going: true, ..Default::default() }).await;
    assert_eq!(statuses(&r), vec![("a".into(), Status::Passed), ("b".into(), Status::Failed)]);
    assert_eq!(r.updated, vec![md.clone()]);
    let new = std::fs::read_to_string(&md).unwrap();
    assert_eq!(new, source.replace("$ echo new\nold\n", "$ echo new\nnew\n"));
}

#[tokio::test]
async fn cancel_interrupts_the_running_block_and_skips_the_rest() {
    let cancel = Cancel::default();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The signal handler would also kill the running block (`process::kill_all`); not here,
        // where it would kill other tests' processes too.
        c.cancel();
    });
    let t = tutorial(&[&["sleep 1", "true"], &["true"]]);
    let r = go_with(t, RunOptions::default(), StepRange::default(), cancel).await;
    let b: Vec<_> = r.blocks().collect();
    assert_eq!(b[1].reason.as_deref(), Some("interrupted"));
    assert_eq!(b[2].reason.as_deref(), Some("interrupted"));
    assert!(r.interrupted);
}

#[tokio::test]
async fn tutorials_run_in_parallel_with_jobs() {
    let make = || tutorial(&[&["sleep 0.5"]]);
    let snaps = tempfile::tempdir().unwrap();
    let prepared: Vec<_> = (0..3)
        .map(|_| prepare(make(), Some(BackendKind::Host), None, StepRange::default(), Some(snaps.path())).ok().unwrap())
        .collect();
    let started = Instant::now();
    let rs = run_all(prepared, RunOptions { jobs: 3, ..Default::default() }, Arc::new(Silent), Cancel::default()).await;
    assert!(rs.iter().all(|r| r.status() == Status::Passed));
    assert!(started.elapsed() < Duration::from_millis(1400), "took {:?}", started.elapsed());
}

/// A backend that panics where told and counts `down` calls.
struct Panicky {
    at: &'static str,
    downs: Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl crate::backend::Backend for Panicky {
    fn kind(&self) -> BackendKind {
        BackendKind::Host
    }
    async fn up(&mut self, _ctx: &crate::backend::UpContext) -> Result<(), crate::backend::BackendError> {
        assert_ne!(self.at, "up", "panic in up");
        Ok(())
    }
    async fn exec(
        &self,
        _req: crate::backend::ExecRequest<'_>,
    ) -> Result<crate::backend::Observation, crate::backend::BackendError> {
        panic!("panic in exec");
    }
    async fn spawn(
        &self,
        _req: crate::backend::ExecRequest<'_>,
    ) -> Result<Box<dyn crate::backend::BgTask>, crate::backend::BackendError> {
        Err(crate::backend::BackendError::Other("no".into()))
    }
    fn state_path(&self, _target: &crate::backend::Target) -> String {
        "/nonexistent/state".into()
    }
    fn facts(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    async fn down(&mut self) -> Result<(), crate::backend::BackendError> {
        self.downs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn down_is_called_even_when_the_backend_panics() {
    for at in ["up", "exec"] {
        let downs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let snaps = tempfile::tempdir().unwrap();
        let mut p =
            prepare(tutorial(&[&["true"]]), Some(BackendKind::Host), None, StepRange::default(), Some(snaps.path()))
                .ok()
                .unwrap();
        p.backend = Box::new(Panicky { at, downs: downs.clone() });
        let r = run_all(vec![p], RunOptions { jobs: 1, ..Default::default() }, Arc::new(Silent), Cancel::default())
            .await
            .remove(0);
        assert_eq!(downs.load(std::sync::atomic::Ordering::SeqCst), 1, "panic in {at}");
        assert_eq!(r.status(), Status::Error, "panic in {at}");
        assert!(r.errors.iter().any(|e| e.contains("internal error")), "{:?}", r.errors);
    }
}

#[tokio::test]
async fn a_daemon_does_not_hold_the_block_and_plain_state_persists() {
    let mut daemon = console("daemon", &[("setsid -f sleep 7 && echo started", "started")]);
    daemon.attrs.timeout = Some(Duration::from_secs(5));
    let t = with_steps(vec![vec![
        console("a", &[("X=plain; f() { echo f$1; }", "")]),
        daemon,
        console("b", &[("echo $X; f 2", "plain\nf2")]),
    ]]);
    let start = Instant::now();
    let r = go(t, RunOptions::default()).await;
    assert!(start.elapsed() < Duration::from_secs(4), "{:?}", start.elapsed());
    assert_eq!(r.status(), Status::Passed, "{r:#?}");
}

#[tokio::test]
async fn a_timeout_restarts_the_shell_with_the_state_from_before_the_block() {
    let mut hang = console("hang", &[("Y=changed; sleep 100", "")]);
    hang.attrs.timeout = Some(Duration::from_millis(300));
    let t = with_steps(vec![vec![
        console("a", &[("Y=before; cd /", "")]),
        hang,
        console("b", &[("echo $Y $PWD", "before /")]),
    ]]);
    let r = go(t, RunOptions { keep_going: true, ..Default::default() }).await;
    let got: Vec<Status> = r.blocks().map(|b| b.status).collect();
    assert_eq!(got, [Status::Passed, Status::Error, Status::Passed], "{r:#?}");
}

#[tokio::test]
async fn a_shell_ended_by_exit_restarts_with_the_state_from_before_the_block() {
    let t = with_steps(vec![vec![
        console("a", &[("Y=before; cd /", "")]),
        console("quit", &[("Y=changed; cd /tmp; exit 3", "")]),
        console("b", &[("echo $Y $PWD", "before /")]),
    ]]);
    let r = go(t, RunOptions { keep_going: true, ..Default::default() }).await;
    let got: Vec<Status> = r.blocks().map(|b| b.status).collect();
    assert_eq!(got, [Status::Passed, Status::Failed, Status::Passed], "{r:#?}");
    let quit = r.blocks().nth(1).unwrap();
    assert!(quit.reason.as_deref().unwrap_or("").contains("the shell exited with status 3"), "{quit:?}");
}

#[tokio::test]
async fn captures_bind_in_one_block_and_are_used_in_later_ones() {
    let t = with_steps(vec![vec![
        console("a", &[("echo id=4242", "id=[..ID..]")]),
        console("b", &[("echo $ID {{ ID }}", "4242 4242"), ("echo id=4242", "id=[..ID..]")]),
    ]]);
    let r = go(t, RunOptions::default()).await;
    assert_eq!(r.status(), Status::Passed, "{r:#?}");
}

#[tokio::test]
async fn command_not_found_is_not_retried() {
    let mut b = console("missing", &[("no-such-command-here", "")]);
    b.attrs.retry = Some(Duration::from_secs(30));
    let start = Instant::now();
    let r = go(with_steps(vec![vec![b]]), RunOptions::default()).await;
    let res = r.blocks().next().unwrap();
    assert_eq!(res.status, Status::Failed);
    assert_eq!(res.tries, 1, "{res:?}");
    assert!(res.reason.as_deref().unwrap_or("").contains("command not found"), "{res:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
}
