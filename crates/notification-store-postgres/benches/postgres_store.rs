//! `make bench` figures of the PostgreSQL store, on 1,000,000 notifications over
//! 10,000 users (plus 20 users with 1,000 unread each), in a schema of its own that
//! is dropped at the end. Each figure is printed with its ratio to a baseline
//! measured in the same run: single-row inserts, the same queries with the inbox
//! indexes dropped (inside a transaction that is rolled back), and marking 1,000
//! notifications read one by one.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench -p notification-store-postgres --bench postgres_store
//! ```
//!
//! `BENCH_ROWS` (default 1000000) scales the data set down for a quick run.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use messaging_model::{Notification, NotificationKind};
use notification_store::{InboxCursor, InboxQuery, NotificationStore};
use notification_store_postgres::{PostgresStore, PostgresStoreConfig};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Connection, PgConnection, Row};

const USERS: usize = 10_000;
const HOT_USERS: usize = 20;
const HOT_UNREAD: usize = 1_000;
const BATCH: usize = 10_000;
const PAGE: u32 = 20;
const SAMPLES: usize = 2_000;
const BASELINE_SAMPLES: usize = 15;
const HEAVY_SAMPLES: usize = 300;

const INBOX_PAGE: &str = include_str!("../queries/inbox_page.sql");
const INBOX_PAGE_UNREAD: &str = include_str!("../queries/inbox_page_unread.sql");
const UNREAD_COUNT: &str = include_str!("../queries/unread_count.sql");
const MARK_ALL_READ: &str = include_str!("../queries/mark_all_read.sql");

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        panic!(
            "DATABASE_URL is not set: this benchmark needs a real PostgreSQL, e.g.\n  \
             DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p notification-store-postgres"
        );
    };
    let rows: usize = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let schema = format!("bench_{}", uuid::Uuid::now_v7().simple());
    let config = PostgresStoreConfig::new(&url)
        .with_schema(&schema)
        .with_max_connections(4);
    let store = PostgresStore::connect(config).await.expect("connect");
    store.migrate().await.expect("migrate");
    println!("notification-store-postgres bench: schema {schema}, {rows} rows over {USERS} users");
    println!("load average before: {}", load_average());

    let outcome = tokio::spawn(bench(store.clone(), rows)).await;
    store.close().await;
    let mut admin = PgConnection::connect(&url)
        .await
        .expect("connect to drop the schema");
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .expect("drop the bench schema");
    admin.close().await.ok();
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .expect("date")
}

fn user(i: usize) -> String {
    format!("user-{i:05}")
}

/// Row `i` of the data set: users interleaved as in real traffic, one row every
/// 10 ms, half of them read.
fn row(i: usize) -> Notification {
    let kinds = [
        NotificationKind::Email,
        NotificationKind::Sms,
        NotificationKind::Push,
        NotificationKind::System,
    ];
    let mut n = Notification::new(
        user(i % USERS),
        kinds[i % 4],
        format!("Your order {i} shipped"),
        "Your parcel left our warehouse and should arrive within two working days.",
    )
    .with_metadata(serde_json::json!({"order": i}));
    n.created_at = base_time() + chrono::Duration::milliseconds(i as i64 * 10);
    if (i / USERS).is_multiple_of(2) {
        n.is_read = true;
        n.read_at = Some(n.created_at + chrono::Duration::minutes(5));
    }
    n
}

/// Records rows `from..to` of the data set in batches of [`BATCH`]: the batches
/// `stream`, `stream + streams`, … of the range, for one of `streams` callers.
async fn insert_range(
    store: &PostgresStore,
    from: usize,
    to: usize,
    stream: usize,
    streams: usize,
) {
    let mut start = from + stream * BATCH;
    while start < to {
        let end = (start + BATCH).min(to);
        let batch: Vec<Notification> = (start..end).map(row).collect();
        store.record_batch(&batch).await.expect("record_batch");
        start += streams * BATCH;
    }
}

fn hot_user(h: usize) -> String {
    format!("hot-{h:02}")
}

struct Percentiles {
    p50: Duration,
    p99: Duration,
    n: usize,
}

fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    samples.sort();
    let n = samples.len();
    let at = |q: f64| samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        n,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(label: &str, with: &Percentiles, baseline_label: &str, baseline: &Percentiles) {
    println!(
        "{label}: p50 {:.3} ms, p99 {:.3} ms (n={}) | {baseline_label}: p50 {:.3} ms, p99 {:.3} ms (n={}) | ratio p50 {:.1}x, p99 {:.1}x",
        ms(with.p50),
        ms(with.p99),
        with.n,
        ms(baseline.p50),
        ms(baseline.p99),
        baseline.n,
        ms(baseline.p50) / ms(with.p50),
        ms(baseline.p99) / ms(with.p99),
    );
}

async fn bench(store: PostgresStore, rows: usize) {
    let started = Instant::now();

    // --- Batch insert, and single-row inserts as the baseline -------------------
    let single_rows = 2_000;
    let single_started = Instant::now();
    for h in 0..2 {
        for k in 0..single_rows / 2 {
            let mut n =
                Notification::new(format!("single-{h}"), NotificationKind::System, "t", "c");
            n.created_at = base_time() + chrono::Duration::milliseconds(k as i64);
            store.record(&n).await.expect("record");
        }
    }
    let single_rate = single_rows as f64 / single_started.elapsed().as_secs_f64();

    // First half: one stream of record_batch calls; second half: two streams at
    // once (two pooled connections), as a loader would use the pool.
    let half = rows / 2;
    let insert_started = Instant::now();
    insert_range(&store, 0, half, 0, 1).await;
    let single_elapsed = insert_started.elapsed();
    let two_started = Instant::now();
    let streams: Vec<_> = (0..2)
        .map(|stream| {
            let store = store.clone();
            tokio::spawn(async move { insert_range(&store, half, rows, stream, 2).await })
        })
        .collect();
    for stream in streams {
        stream.await.expect("insert stream");
    }
    let two_elapsed = two_started.elapsed();
    let total_elapsed = insert_started.elapsed();
    let one_rate = half as f64 / single_elapsed.as_secs_f64();
    let two_rate = (rows - half) as f64 / two_elapsed.as_secs_f64();
    let total_rate = rows as f64 / total_elapsed.as_secs_f64();
    let met = |rate: f64| if rate >= 50_000.0 { "met" } else { "MISSED" };
    println!(
        "batch insert, 1 stream (record_batch, {BATCH} rows per UNNEST statement): {half} rows in {:.1} s = {one_rate:.0} rows/s | baseline single-row record: {single_rate:.0} rows/s | ratio {:.1}x | target >= 50000 rows/s: {}",
        single_elapsed.as_secs_f64(),
        one_rate / single_rate,
        met(one_rate),
    );
    println!(
        "batch insert, 2 streams: {} rows in {:.1} s = {two_rate:.0} rows/s | ratio to single-row {:.1}x | target: {}",
        rows - half,
        two_elapsed.as_secs_f64(),
        two_rate / single_rate,
        met(two_rate),
    );
    println!(
        "batch insert, all {rows} rows: {:.1} s = {total_rate:.0} rows/s",
        total_elapsed.as_secs_f64()
    );

    // One heavy user (a tenth of the data set, at most 100,000 rows), for deep pages.
    let heavy_rows = (rows / 10).min(100_000);
    let mut done = 0;
    while done < heavy_rows {
        let end = (done + BATCH).min(heavy_rows);
        let batch: Vec<Notification> = (done..end)
            .map(|k| {
                let mut n = Notification::new("heavy", NotificationKind::Email, "t", "c");
                n.created_at = base_time() + chrono::Duration::milliseconds(k as i64 * 100);
                n
            })
            .collect();
        store.record_batch(&batch).await.expect("record heavy user");
        done = end;
    }

    // Hot users: 1,000 unread each, for mark_all_read.
    for h in 0..HOT_USERS {
        let batch: Vec<Notification> = (0..HOT_UNREAD)
            .map(|k| {
                let mut n = Notification::new(hot_user(h), NotificationKind::Push, "t", "c");
                n.created_at = base_time() + chrono::Duration::milliseconds(k as i64 * 7);
                n
            })
            .collect();
        store.record_batch(&batch).await.expect("record hot users");
    }
    sqlx::raw_sql("VACUUM ANALYZE notifications")
        .execute(store.pool())
        .await
        .expect("vacuum analyze");

    // --- Reads through the store ------------------------------------------------
    let mut rng = fastrand::Rng::with_seed(7);
    let users: Vec<String> = (0..SAMPLES).map(|_| user(rng.usize(..USERS))).collect();
    let deep_rows = (rows / USERS).saturating_sub(PAGE as usize).max(1);
    // Deep page: the page after the first `deep_rows` rows of the user, by cursor.
    let mut deep_cursors = Vec::with_capacity(SAMPLES);
    for u in &users {
        let (created_at, id): (DateTime<Utc>, uuid::Uuid) = sqlx::query_as(
            "SELECT created_at, id FROM notifications WHERE user_id = $1 \
             ORDER BY created_at DESC, id DESC OFFSET $2 LIMIT 1",
        )
        .bind(u)
        .bind(deep_rows as i64 - 1)
        .fetch_one(store.pool())
        .await
        .expect("deep cursor");
        deep_cursors.push(InboxCursor { created_at, id });
    }
    // Warm the statement cache and the buffer cache.
    for u in users.iter().take(200) {
        let q = InboxQuery::default().with_limit(PAGE);
        store.list_for_user(u, &q).await.expect("warm up");
        store.unread_count(u).await.expect("warm up");
    }

    let mut first = Vec::with_capacity(SAMPLES);
    for u in &users {
        let q = InboxQuery::default().with_limit(PAGE);
        let t = Instant::now();
        let page = store.list_for_user(u, &q).await.expect("first page");
        first.push(t.elapsed());
        assert_eq!(page.items.len(), (PAGE as usize).min(rows / USERS));
    }
    let mut deep = Vec::with_capacity(SAMPLES);
    for (u, cursor) in users.iter().zip(&deep_cursors) {
        let q = InboxQuery::default().with_limit(PAGE).with_cursor(*cursor);
        let t = Instant::now();
        let page = store.list_for_user(u, &q).await.expect("deep page");
        deep.push(t.elapsed());
        assert!(!page.items.is_empty());
    }
    let mut unread_page = Vec::with_capacity(SAMPLES);
    for u in &users {
        let q = InboxQuery::default().with_limit(PAGE).unread_only();
        let t = Instant::now();
        store.list_for_user(u, &q).await.expect("unread page");
        unread_page.push(t.elapsed());
    }
    let mut counts = Vec::with_capacity(SAMPLES);
    for u in &users {
        let t = Instant::now();
        store.unread_count(u).await.expect("unread count");
        counts.push(t.elapsed());
    }
    let (first, deep, unread_page, counts) = (
        percentiles(first),
        percentiles(deep),
        percentiles(unread_page),
        percentiles(counts),
    );

    // --- The heavy user: keyset pages deep in a long inbox, and OFFSET ---------
    let heavy_deep = heavy_rows * 9 / 10;
    let (created_at, id): (DateTime<Utc>, uuid::Uuid) = sqlx::query_as(
        "SELECT created_at, id FROM notifications WHERE user_id = 'heavy' \
         ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
    )
    .bind(heavy_deep as i64 - 1)
    .fetch_one(store.pool())
    .await
    .expect("heavy cursor");
    let heavy_cursor = InboxCursor { created_at, id };
    let mut heavy_keyset = Vec::with_capacity(HEAVY_SAMPLES);
    for _ in 0..HEAVY_SAMPLES {
        let q = InboxQuery::default()
            .with_limit(PAGE)
            .with_cursor(heavy_cursor);
        let t = Instant::now();
        let page = store
            .list_for_user("heavy", &q)
            .await
            .expect("heavy deep page");
        heavy_keyset.push(t.elapsed());
        assert_eq!(page.items.len(), PAGE as usize);
    }
    let offset_sql = format!(
        "SELECT id, user_id, kind, title, content, status, is_read, metadata, error, \
         idempotency_key, created_at, read_at, sent_at FROM notifications \
         WHERE user_id = 'heavy' ORDER BY created_at DESC, id DESC OFFSET {heavy_deep} LIMIT {}",
        PAGE + 1
    );
    let mut heavy_offset = Vec::with_capacity(BASELINE_SAMPLES);
    for _ in 0..BASELINE_SAMPLES {
        let t = Instant::now();
        let rows: Vec<PgRow> = sqlx::query(AssertSqlSafe(offset_sql.clone()))
            .fetch_all(store.pool())
            .await
            .expect("offset page");
        heavy_offset.push(t.elapsed());
        assert_eq!(rows.len(), PAGE as usize + 1);
    }

    // --- The same queries without the inbox indexes (rolled back) -------------
    let mut conn = PgConnection::connect_with(&store.pool().connect_options())
        .await
        .expect("baseline connection");
    let mut tx = conn.begin().await.expect("begin");
    sqlx::raw_sql("DROP INDEX notifications_inbox_idx, notifications_unread_idx")
        .execute(&mut *tx)
        .await
        .expect("drop indexes");
    let mut b_first = Vec::new();
    let mut b_deep = Vec::new();
    let mut b_unread_page = Vec::new();
    let mut b_counts = Vec::new();
    for (u, cursor) in users.iter().zip(&deep_cursors).take(BASELINE_SAMPLES) {
        let t = Instant::now();
        page_query(&mut tx, INBOX_PAGE, u, None).await;
        b_first.push(t.elapsed());
        let t = Instant::now();
        page_query(&mut tx, INBOX_PAGE, u, Some(*cursor)).await;
        b_deep.push(t.elapsed());
        let t = Instant::now();
        page_query(&mut tx, INBOX_PAGE_UNREAD, u, None).await;
        b_unread_page.push(t.elapsed());
        let t = Instant::now();
        let _: i64 = sqlx::query_scalar(UNREAD_COUNT)
            .bind(u)
            .fetch_one(&mut *tx)
            .await
            .expect("count without index");
        b_counts.push(t.elapsed());
    }
    let no_index_explain = explain_all(&mut tx, &users[0], deep_cursors[0], heavy_cursor).await;
    tx.rollback()
        .await
        .expect("rollback: the indexes come back");
    let mut tx = conn.begin().await.expect("begin");
    let with_index_explain = explain_all(&mut tx, &users[0], deep_cursors[0], heavy_cursor).await;
    tx.rollback().await.expect("rollback");
    conn.close().await.ok();

    let baseline = "same query without the inbox indexes";
    report(
        &format!("inbox first page ({PAGE} rows)"),
        &first,
        baseline,
        &percentiles(b_first),
    );
    report(
        &format!("inbox deep page ({PAGE} rows after {deep_rows}, keyset)"),
        &deep,
        baseline,
        &percentiles(b_deep),
    );
    report(
        &format!("inbox unread-only page ({PAGE} rows)"),
        &unread_page,
        baseline,
        &percentiles(b_unread_page),
    );
    report("unread count", &counts, baseline, &percentiles(b_counts));
    report(
        &format!("heavy user ({heavy_rows} rows): deep page after {heavy_deep} rows, keyset"),
        &percentiles(heavy_keyset),
        "same page by OFFSET",
        &percentiles(heavy_offset),
    );
    for (label, p) in [
        ("inbox first page", &first),
        ("inbox deep page", &deep),
        ("unread count", &counts),
    ] {
        println!(
            "target {label} p99 < 5 ms: {}",
            if p.p99 < Duration::from_millis(5) {
                "met"
            } else {
                "MISSED"
            }
        );
    }

    // --- mark_all_read of 1,000 unread, and one by one as the baseline ---------
    let mut mark_all = Vec::new();
    for h in 0..HOT_USERS - 3 {
        let t = Instant::now();
        let changed = store
            .mark_all_read(&hot_user(h))
            .await
            .expect("mark_all_read");
        mark_all.push(t.elapsed());
        assert_eq!(changed, HOT_UNREAD as u64);
    }
    let mut one_by_one = Vec::new();
    for h in HOT_USERS - 3..HOT_USERS {
        let u = hot_user(h);
        let ids: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM notifications WHERE user_id = $1 AND NOT is_read")
                .bind(&u)
                .fetch_all(store.pool())
                .await
                .expect("ids");
        let t = Instant::now();
        for id in ids {
            store.mark_read(&u, id).await.expect("mark_read");
        }
        one_by_one.push(t.elapsed());
    }
    report(
        &format!("mark_all_read ({HOT_UNREAD} unread)"),
        &percentiles(mark_all),
        &format!("mark_read x{HOT_UNREAD}, one round trip each"),
        &percentiles(one_by_one),
    );

    println!("\n== EXPLAIN (ANALYZE, BUFFERS) with the indexes ==\n{with_index_explain}");
    println!("== EXPLAIN (ANALYZE, BUFFERS) without the inbox indexes ==\n{no_index_explain}");
    println!("load average after: {}", load_average());
    println!("total bench time {:.1} s", started.elapsed().as_secs_f64());
}

/// Other work on the machine shows in the tails: print it beside the figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

async fn page_query(
    conn: &mut PgConnection,
    sql: &'static str,
    u: &str,
    cursor: Option<InboxCursor>,
) {
    let rows: Vec<PgRow> = sqlx::query(sql)
        .bind(u)
        .bind(None::<&str>)
        .bind(None::<DateTime<Utc>>)
        .bind(cursor.map(|c| c.created_at))
        .bind(cursor.map(|c| c.id))
        .bind(i64::from(PAGE) + 1)
        .fetch_all(conn)
        .await
        .expect("page query");
    assert!(
        rows.first()
            .is_none_or(|r| r.try_get::<String, _>("user_id").is_ok())
    );
}

/// EXPLAIN (ANALYZE, BUFFERS) of each query for `u`: with bound values (the custom
/// plan) and, for the page query, the generic plan a cached prepared statement may
/// switch to. Runs inside a transaction; mark_all_read in a savepoint rolled back.
async fn explain_all(
    conn: &mut PgConnection,
    u: &str,
    deep: InboxCursor,
    heavy: InboxCursor,
) -> String {
    let mut out = String::new();
    let lit = |t: DateTime<Utc>| format!("'{}'::timestamptz", t.to_rfc3339());
    let cases = [
        (
            "inbox first page",
            INBOX_PAGE,
            format!("'{u}', NULL, NULL, NULL, NULL, 21"),
        ),
        (
            "inbox deep page",
            INBOX_PAGE,
            format!(
                "'{u}', NULL, NULL, {}, '{}'::uuid, 21",
                lit(deep.created_at),
                deep.id
            ),
        ),
        (
            "heavy user deep page",
            INBOX_PAGE,
            format!(
                "'heavy', NULL, NULL, {}, '{}'::uuid, 21",
                lit(heavy.created_at),
                heavy.id
            ),
        ),
        (
            "inbox unread-only page",
            INBOX_PAGE_UNREAD,
            format!("'{u}', NULL, NULL, NULL, NULL, 21"),
        ),
        ("unread count", UNREAD_COUNT, format!("'{u}'")),
    ];
    for (i, (label, sql, args)) in cases.iter().enumerate() {
        for generic in [false, true] {
            let name = format!("bench_explain_{i}");
            sqlx::raw_sql(AssertSqlSafe(format!(
                "SET LOCAL plan_cache_mode = {}; PREPARE {name} AS\n{sql}",
                if generic {
                    "force_generic_plan"
                } else {
                    "force_custom_plan"
                }
            )))
            .execute(&mut *conn)
            .await
            .expect("prepare");
            let plan = explain(
                conn,
                &format!("EXPLAIN (ANALYZE, BUFFERS) EXECUTE {name}({args})"),
            )
            .await;
            let kind = if generic {
                "generic plan"
            } else {
                "custom plan"
            };
            out.push_str(&format!("-- {label} ({kind})\n{plan}\n"));
            sqlx::raw_sql(AssertSqlSafe(format!("DEALLOCATE {name}")))
                .execute(&mut *conn)
                .await
                .expect("deallocate");
        }
    }
    sqlx::raw_sql("SET LOCAL plan_cache_mode = auto; SAVEPOINT explain_mark_all_read")
        .execute(&mut *conn)
        .await
        .expect("savepoint");
    let sql = MARK_ALL_READ.replace("$1", "'hot-17'");
    let plan = explain(conn, &format!("EXPLAIN (ANALYZE, BUFFERS)\n{sql}")).await;
    out.push_str(&format!(
        "-- mark_all_read of a user with {HOT_UNREAD} unread\n{plan}\n"
    ));
    sqlx::raw_sql("ROLLBACK TO SAVEPOINT explain_mark_all_read")
        .execute(&mut *conn)
        .await
        .expect("rollback to savepoint");
    out
}

async fn explain(conn: &mut PgConnection, sql: &str) -> String {
    // Simple protocol: nothing lands in the driver's statement cache.
    let rows = sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .fetch_all(conn)
        .await
        .expect("explain");
    rows.iter()
        .map(|r| r.try_get::<String, _>(0).expect("plan line"))
        .collect::<Vec<_>>()
        .join("\n")
}
