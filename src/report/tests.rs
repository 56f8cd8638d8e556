use super::*;

#[test]
fn dependencies_take_two_words_and_read_back_in_order() {
    assert_eq!(std::mem::size_of::<Dependencies>(), 16);
    let mut r = ComponentRecord::new("c".into());
    assert!(r.dependencies().is_empty());
    r.dependencies = Dependencies::One("a".into());
    assert_eq!(r.dependencies(), [Arc::from("a")]);
    r.dependencies = Dependencies::List(Some(Arc::new(vec!["b".into(), "a".into()])));
    assert_eq!(r.dependencies(), [Arc::from("b"), Arc::from("a")]);
}

fn report_of(records: Vec<ComponentRecord>) -> Report {
    Report::new(Instant::now(), Phase::Running, &Moments::default(), records)
}

#[test]
fn a_restarting_row_keeps_the_columns_aligned() {
    let mut records: Vec<ComponentRecord> = ["db", "queue"]
        .map(|n| ComponentRecord::new(n.into()))
        .into();
    records[1].state = ComponentState::Restarting;
    let table = report_of(records).to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[3].contains(" restarting "), "{table}");
    assert!(
        lines[2..].iter().all(|l| l.len() == lines[1].len()),
        "{table}"
    );
}

#[test]
fn each_restarted_component_has_a_line_under_the_table() {
    let failure = |ms, error: &str| RunFailure {
        at: Duration::from_millis(ms),
        error: error.into(),
    };
    let mut records: Vec<ComponentRecord> = ["db", "queue", "cache"]
        .map(|n| ComponentRecord::new(n.into()))
        .into();
    let mut queue = Failures::default();
    queue.push(failure(10, "`queue` failed in run: first"));
    queue.push(failure(25, "`queue` failed in run: second"));
    records[1].failures = Some(Arc::new(queue));
    let mut cache = Failures::default();
    cache.push(failure(40, "`cache` panicked in run: gone"));
    records[2].failures = Some(Arc::new(cache));
    let table = report_of(records).to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[5..],
        [
            "queue restarted 2 times; latest failure at 25.0 ms: `queue` failed in run: second",
            "cache restarted 1 time; latest failure at 40.0 ms: `cache` panicked in run: gone",
        ],
        "{table}"
    );
    let without = report_of(vec![ComponentRecord::new("db".into())]).to_string();
    assert_eq!(without.lines().count(), 3, "{without}");
}

#[test]
fn a_failure_over_several_lines_reads_on_one_line_under_the_table() {
    let mut failures = Failures::default();
    failures.push(RunFailure {
        at: Duration::from_millis(5),
        error:
            "`queue` failed in run: broker gone\r\n  retried 3 times\n\n\tlast: refused\tat\r0\n"
                .into(),
    });
    let mut records = vec![ComponentRecord::new("queue".into())];
    records[0].failures = Some(Arc::new(failures));
    let table = report_of(records).to_string();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert_eq!(
        lines[3],
        "queue restarted 1 time; latest failure at 5.0 ms: \
         `queue` failed in run: broker gone; retried 3 times; last: refused\\tat\\r0",
        "{table}"
    );
}

#[test]
fn a_large_report_finds_every_component_by_name_and_no_other() {
    let names: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
    let records = names
        .iter()
        .map(|n| ComponentRecord::new(n.as_str().into()))
        .collect();
    let report = report_of(records);
    for r in [&report, &report.clone()] {
        for (i, name) in names.iter().enumerate() {
            let found = r.component(name).expect("registered");
            assert!(std::ptr::eq(found, &r.components()[i]));
        }
        assert!(r.component("c1000").is_none());
        assert!(r.component("").is_none());
    }
}

/// The lifecycle's rows are its own until a report is taken: a write then
/// leaves every report taken before it as it was, and the rows are taken
/// back (not copied again) once no report holds them.
#[test]
fn rows_written_after_a_report_leave_it_unchanged() {
    let mut rows = Records::default();
    rows.push(ComponentRecord::new("db".into()));
    let first = rows.share();
    rows[0].attempts = 1;
    assert_eq!(first[0].attempts, 0, "the report taken before the write");
    assert_eq!(rows[0].attempts, 1);
    let second = rows.share();
    assert!(
        Arc::ptr_eq(&second, &rows.share()),
        "taking a report copies nothing"
    );
    drop((first, second));
    rows[0].attempts = 2;
    assert!(
        matches!(rows, Records::Own(_)),
        "taken back once no report holds them"
    );
    assert_eq!(rows[0].attempts, 2);
}
