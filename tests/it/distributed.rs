//! SQL on Ballista (feature `distributed`): a scheduler and an executor started in the
//! `mathlake` process (`--engine standalone`) give the rows the local engine gives, with
//! mathlake's functions running on the executor, on a local lake and on S3.

use crate::common::*;

/// Queries a curation, dedup and mixture lean on: per-row functions, an aggregation that
/// shuffles, the LSH band keys grouped in the cluster.
const QUERIES: &[&str] = &[
    "SELECT source, count(*) AS n, sum(word_count(text)) AS words FROM documents GROUP BY source ORDER BY source",
    "SELECT id, round(math_score(text), 6) AS math, language(text)['code'] AS language, \
     quality_signals(text)['stop_word_count'] AS stop_words FROM documents ORDER BY id",
    "SELECT key, count(*) AS n, min(id) AS first FROM (SELECT id, unnest(minhash_bands(minhash(text), 14, 8)) AS key \
     FROM documents) GROUP BY key HAVING count(*) > 1 ORDER BY key, first",
];

fn engines_agree(lake: &str, env: &[(&str, String)]) {
    for sql in QUERIES {
        let local = query(lake, sql, env);
        let mut command = mathlake(&["query", "--json", "--engine", "standalone", "--lake", lake, sql]);
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let distributed: Vec<serde_json::Value> = ok(&mut command).lines().map(json).collect();
        assert!(!local.is_empty(), "{sql}");
        assert_eq!(local, distributed, "{sql}");
    }
}

#[test]
fn ballista_in_process_gives_the_rows_of_the_local_engine() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_in(&dir);
    let web = shared_data("web/stackmathqa_987.jsonl");
    ok(&mut mathlake(&["ingest", web.to_str().unwrap(), "--preset", "stackmathqa", "--lake", &lake]));
    engines_agree(&lake, &[]);

    // A function's error on one bad row reaches the user as it does locally.
    let bad = "SELECT minhash(text, 0, 112, 1) FROM documents";
    let local = mathlake(&["query", "--lake", &lake, bad]).output().unwrap();
    let distributed = mathlake(&["query", "--engine", "standalone", "--lake", &lake, bad]).output().unwrap();
    assert!(!local.status.success() && !distributed.status.success());
    let local = String::from_utf8_lossy(&local.stderr).into_owned();
    let message = local.lines().next().unwrap().trim_start_matches("error: Execution error: ");
    assert_eq!(message, "minhash: ngram must be 1 to 64 words, not 0", "{local}");
    let distributed = String::from_utf8_lossy(&distributed.stderr).into_owned();
    let error = distributed.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
    assert!(error.contains(message), "{distributed}");
    // And it failed on Ballista's executor, not in this process.
    assert!(error.contains("failed due to stage"), "{distributed}");

    // An unknown table is named as it is locally.
    let missing = "SELECT * FROM no_such_table";
    let local = fails(&mut mathlake(&["query", "--lake", &lake, missing]));
    let distributed = fails(&mut mathlake(&["query", "--engine", "standalone", "--lake", &lake, missing]));
    assert!(local.contains("table 'datafusion.public.no_such_table' not found"), "{local}");
    assert_eq!(local.lines().next(), distributed.lines().next(), "{distributed}");
}

#[test]
fn ballista_in_process_reads_a_lake_on_s3() {
    create_bucket("mathlake-distributed");
    let env = s3_env();
    let lake = format!("s3://mathlake-distributed/{}/lake", std::process::id());
    let web = shared_data("web/stackmathqa_987.jsonl");
    let mut command = mathlake(&["ingest", web.to_str().unwrap(), "--preset", "stackmathqa", "--lake", &lake]);
    ok(command.envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
    engines_agree(&lake, &env);
}

/// A scheduler and two executors, each its own `mathlake` process, on free loopback
/// ports, with the test S3 server's settings; killed when dropped.
struct Cluster {
    scheduler: std::process::Child,
    executors: Vec<std::process::Child>,
    address: String,
    _work: tempfile::TempDir,
}

impl Cluster {
    fn start(env: &[(&str, String)]) -> Cluster {
        let work = tempfile::tempdir().unwrap();
        let port = free_port();
        let spawn = |args: &[&str], log: &str| {
            let mut command = mathlake(args);
            command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
            let log = std::fs::File::create(work.path().join(log)).unwrap();
            command.stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("mathlake starts")
        };
        let scheduler = spawn(
            &["scheduler", "--port", &port.to_string(), "--executor-timeout", "5", "--task-max-failures", "8"],
            "scheduler.log",
        );
        wait_for_port(port);
        let executors = (0..2)
            .map(|n| {
                let (flight, grpc) = (free_port(), free_port());
                let dir = work.path().join(format!("executor-{n}"));
                let child = spawn(
                    &[
                        "executor",
                        "--scheduler",
                        &format!("127.0.0.1:{port}"),
                        "--port",
                        &flight.to_string(),
                        "--grpc-port",
                        &grpc.to_string(),
                        "--slots",
                        "2",
                        "--heartbeat-interval",
                        "1",
                        "--work-dir",
                        dir.to_str().unwrap(),
                    ],
                    &format!("executor-{n}.log"),
                );
                wait_for_port(flight);
                child
            })
            .collect();
        Cluster { scheduler, executors, address: format!("ballista://127.0.0.1:{port}"), _work: work }
    }

    /// Tasks executor `n` has started.
    fn tasks(&self, n: usize) -> usize {
        self.log(&format!("executor-{n}")).matches("Execute task").count()
    }

    /// Waits until one of the executors `alive` has been running one task for half a
    /// second (a task of the query just started: the tasks of this test's queries take
    /// seconds) and returns its number.
    fn busy_executor(&self, alive: &[usize]) -> usize {
        let running = |n: usize| {
            let log = self.log(&format!("executor-{n}"));
            log.matches("Execute task").count() > log.matches("Finished task").count()
        };
        let mut since = None;
        let mut busy = 0;
        wait_until("an executor to be busy for half a second", || match alive.iter().copied().find(|&n| running(n)) {
            Some(n)
                if since
                    .is_some_and(|(m, t): (usize, std::time::Instant)| m == n && t.elapsed().as_millis() >= 500) =>
            {
                busy = n;
                true
            }
            Some(n) => {
                if since.is_none_or(|(m, _)| m != n) {
                    since = Some((n, std::time::Instant::now()));
                }
                false
            }
            None => {
                since = None;
                false
            }
        });
        busy
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self._work.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// What the processes logged, for a failing assertion.
    fn logs(&self) -> String {
        let mut logs = String::new();
        for entry in std::fs::read_dir(self._work.path()).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                let tail: Vec<_> = text.lines().rev().take(30).collect();
                logs += &format!(
                    "--- {}\n{}\n",
                    entry.path().display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        logs
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.executors.iter_mut().chain(std::iter::once(&mut self.scheduler)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Rows of every table a curation file wrote, sorted by id.
fn curated(lake: &str, env: &[(&str, String)]) -> Vec<Vec<serde_json::Value>> {
    ["document_signals", "math_documents", "general_documents"]
        .iter()
        .map(|table| query(lake, &format!("SELECT * FROM {table} ORDER BY id"), env))
        .collect()
}

#[test]
fn a_scheduler_and_two_executor_processes_give_the_rows_of_the_local_engine_on_s3() {
    create_bucket("mathlake-cluster");
    let env = s3_env();
    let cluster = Cluster::start(&env);
    let lake = |name: &str| format!("s3://mathlake-cluster/{}/{name}", std::process::id());
    let (local, distributed) = (lake("local"), lake("distributed"));
    let web = shared_data("web/stackmathqa_987.jsonl");
    let general = shared_data("general/cc_sample_697.jsonl.gz");
    for lake in [&local, &distributed] {
        for (file, preset) in [(&web, "stackmathqa"), (&general, "dolma")] {
            let mut command = mathlake(&["ingest", file.to_str().unwrap(), "--preset", preset, "--lake", lake]);
            ok(command.envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
        }
    }

    // Queries: per-row functions, a shuffled aggregation, MinHash candidate pairs.
    for sql in QUERIES {
        let rows = query(&local, sql, &env);
        let mut command = mathlake(&["query", "--json", "--engine", &cluster.address, "--lake", &distributed, sql]);
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let output = command.output().unwrap();
        assert!(output.status.success(), "{sql}: {}\n{}", String::from_utf8_lossy(&output.stderr), cluster.logs());
        let on_cluster: Vec<serde_json::Value> = String::from_utf8(output.stdout).unwrap().lines().map(json).collect();
        assert!(!rows.is_empty(), "{sql}");
        assert_eq!(rows, on_cluster, "{sql}");
    }

    // A classifier of our own, by URL: trained the other way round (what the shipped model
    // calls prose as math), written to S3 and read there by each executor.
    let model = format!("{local}/models/reversed.model");
    let mut command = mathlake(&[
        "classifier",
        "train",
        "--lake",
        &local,
        "--bits",
        "14",
        "--out",
        &model,
        "--positive",
        "SELECT text FROM documents WHERE math_score(text) < 0.5",
        "--negative",
        "SELECT text FROM documents WHERE math_score(text) >= 0.5",
    ]);
    ok(command.envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
    let sql = format!(
        "SELECT id, round(math_score(text, '{model}'), 6) AS own, math_score(text) >= 0.5 AS shipped FROM documents ORDER BY id"
    );
    let rows = query(&local, &sql, &env);
    let mut command = mathlake(&["query", "--json", "--engine", &cluster.address, "--lake", &distributed, &sql]);
    assert_eq!(rows, ok(command.envs(env.iter().map(|(k, v)| (*k, v.as_str())))).lines().map(json).collect::<Vec<_>>());
    let agree = rows.iter().filter(|r| (r["own"].as_f64().unwrap() >= 0.5) == r["shipped"].as_bool().unwrap()).count();
    assert!(
        rows.len() > 1000 && agree * 10 < rows.len(),
        "{agree} of {} rows agree with the shipped model",
        rows.len()
    );

    // A function's error on one bad row: the local message, from a task on the cluster.
    let bad = "SELECT minhash(text, 0, 112, 1) FROM documents";
    let local_error =
        fails(mathlake(&["query", "--lake", &local, bad]).envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
    let mut command = mathlake(&["query", "--engine", &cluster.address, "--lake", &distributed, bad]);
    let cluster_error = fails(command.envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
    let message = "minhash: ngram must be 1 to 64 words, not 0";
    assert!(local_error.contains(message), "{local_error}");
    let error = cluster_error.lines().find(|l| l.starts_with("error: ")).unwrap_or_default();
    assert!(error.contains(message) && error.contains("failed due to stage"), "{cluster_error}");

    // The curation file, every statement on the cluster, each table committed by the driver.
    let curate = |lake: &str, engine: &str| {
        let mut command = mathlake(&["sql", "sql/curate_documents.sql", "--engine", engine, "--lake", lake]);
        ok(command.envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
    };
    curate(&local, "local");
    curate(&distributed, &cluster.address);
    let (expected, got) = (curated(&local, &env), curated(&distributed, &env));
    assert!(expected.iter().all(|rows| !rows.is_empty()), "each curated table has rows");
    assert_eq!(expected, got);

    // Decontamination, GSM8K train against its test set, the comparison on the cluster.
    let decontaminate = |lake: &str, engine: &str| {
        for file in ["problems/gsm8k_train.jsonl", "problems/gsm8k_test.jsonl"] {
            let path = shared_data(file);
            let mut command = mathlake(&["ingest", path.to_str().unwrap(), "--preset", "gsm8k", "--lake", lake]);
            ok(command.envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
        }
        let mut command = mathlake(&[
            "decontaminate",
            "--input",
            "problems",
            "--benchmarks",
            "problems",
            "--to",
            "clean",
            "--report",
            "contamination",
            "--engine",
            engine,
            "--lake",
            lake,
        ]);
        ok(command.envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
        ["SELECT id FROM clean ORDER BY id", "SELECT * FROM contamination ORDER BY training_id, benchmark, item_id"]
            .map(|sql| query(lake, sql, &env))
    };
    let tasks_before = cluster.tasks(0) + cluster.tasks(1);
    let [clean, contamination] = decontaminate(&local, "local");
    assert!(clean.len() > 7000 && clean.len() < 7473, "GSM8K train less what overlaps its test set: {}", clean.len());
    assert!(
        contamination.len() > 1319,
        "every test item overlaps itself, and some train records: {}",
        contamination.len()
    );
    assert_eq!([clean, contamination], decontaminate(&distributed, &cluster.address));
    assert!(cluster.tasks(0) + cluster.tasks(1) > tasks_before, "the comparison ran on the cluster");

    // The clean problems tokenized on the cluster, then a mixture of them with its source's
    // SQL on the cluster: the same token rows and the same shards.
    let dir = tempfile::tempdir().unwrap();
    let mixture = dir.path().join("problems.toml");
    std::fs::write(
        &mixture,
        "name = \"problems\"\nmode = \"cpt\"\nsequence_length = 128\ntotal_tokens = 65536\n\n\
         [[source]]\nname = \"problems\"\ninput = \"problem_tokens\"\nwhere = \"split = 'train'\"\nweight = 1.0\n",
    )
    .unwrap();
    let tokenizer = shared_data("tokenizers/gpt2.json");
    let shards = |lake: &str, engine: &str| {
        let tokenize = [
            "tokenize",
            "--input",
            "clean",
            "--tokenizer",
            tokenizer.to_str().unwrap(),
            "--to",
            "problem_tokens",
            "--keep",
            "split",
            "--engine",
            engine,
        ];
        let mut command = mathlake(&[&tokenize[..], &["--lake", lake]].concat());
        let tasks_before = cluster.tasks(0) + cluster.tasks(1);
        ok(command.envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
        let on_cluster = cluster.tasks(0) + cluster.tasks(1) > tasks_before;
        assert_eq!(on_cluster, engine != "local", "tokenized on the cluster exactly when asked");
        let token_rows = query(lake, "SELECT * FROM problem_tokens ORDER BY id", &env);
        assert!(token_rows.len() > 7000, "{}", token_rows.len());
        let to = format!("{lake}/shards");
        let build =
            ["shards", "build", "--json", "--mixture", mixture.to_str().unwrap(), "--to", &to, "--engine", engine];
        let mut command = mathlake(&[&build[..], &["--lake", lake]].concat());
        let built = json(&ok(command.envs(env.iter().map(|(k, v)| (*k, v.as_str())))));
        let manifest = &built["shards"]["manifest"];
        [
            manifest["train"]["shards"].clone(),
            manifest["validation"]["shards"].clone(),
            manifest["records"].clone(),
            serde_json::Value::Array(token_rows),
        ]
    };
    let tasks_before = cluster.tasks(0) + cluster.tasks(1);
    let expected = shards(&local, "local");
    assert!(!expected[0].as_array().unwrap().is_empty(), "train shards: {expected:?}");
    // The manifests list every shard with its xxh3-128: equal lists are equal bytes.
    assert_eq!(expected, shards(&distributed, &cluster.address));
    assert!(cluster.tasks(0) + cluster.tasks(1) > tasks_before, "the sources were read on the cluster");
}

/// Waits until `done` holds, for at most 60 seconds.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn on_a_cluster_dedup_keeps_what_it_keeps_locally_and_a_killed_executor_loses_no_rows() {
    create_bucket("mathlake-cluster-kill");
    let env = s3_env();
    let envs = |command: &mut std::process::Command| {
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    };
    let mut cluster = Cluster::start(&env);
    let dir = tempfile::tempdir().unwrap();
    let lake = format!("s3://mathlake-cluster-kill/{}/lake", std::process::id());
    // Two data files, so that a scan is two tasks, one on each executor; about four
    // seconds of language and MinHash work each on this machine.
    let corpus = std::fs::read_to_string(bench_corpus(dir.path(), 30)).unwrap();
    let lines: Vec<&str> = corpus.lines().collect();
    for (n, half) in lines.chunks(lines.len().div_ceil(2)).enumerate() {
        let path = dir.path().join(format!("half-{n}.jsonl"));
        std::fs::write(&path, half.join("\n")).unwrap();
        let path = path.to_str().unwrap();
        let mut command =
            mathlake(&["ingest", path, "--table", "documents", "--source", "bench", "--map", "text=text"]);
        envs(command.args(["--lake", &lake]));
        ok(&mut command);
    }
    // Dedup with each document's signature computed on the cluster: the same documents
    // kept and the same clusters (the corpus holds exact and near copies).
    let tasks_before = cluster.tasks(0) + cluster.tasks(1);
    for (engine, suffix) in [("local", "local"), (cluster.address.as_str(), "cluster")] {
        let (to, clusters) = (format!("unique_{suffix}"), format!("clusters_{suffix}"));
        let mut command =
            mathlake(&["dedup", "--input", "documents", "--to", &to, "--clusters", &clusters, "--engine", engine]);
        envs(command.args(["--lake", &lake]));
        ok(&mut command);
    }
    assert!(cluster.tasks(0) + cluster.tasks(1) > tasks_before, "the signatures were computed on the cluster");
    let rows = |sql: &str| query(&lake, sql, &env);
    let kept = rows("SELECT id FROM unique_local ORDER BY id");
    assert!(kept.len() < lines.len() && kept.len() > lines.len() / 2, "{} of {}", kept.len(), lines.len());
    assert_eq!(kept, rows("SELECT id FROM unique_cluster ORDER BY id"));
    let clusters = rows("SELECT * FROM clusters_local ORDER BY id");
    assert!(!clusters.is_empty());
    assert_eq!(clusters, rows("SELECT * FROM clusters_cluster ORDER BY id"));

    let sql = dir.path().join("signals.sql");
    std::fs::write(
        &sql,
        "COPY (SELECT id, language(text)['code'] AS language, cardinality(minhash(text)) AS slots FROM documents) \
         TO 'signals'",
    )
    .unwrap();
    let run = |engine: &str| {
        let mut command = mathlake(&["sql", sql.to_str().unwrap(), "--engine", engine, "--lake", &lake]);
        envs(&mut command);
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap()
    };
    let signals = || query(&lake, "SELECT * FROM signals ORDER BY id", &env);
    let version = || {
        query(&lake, "SELECT max(version) AS v FROM mathlake_versions WHERE table_name = 'signals'", &env)[0]["v"]
            .clone()
    };
    assert_success(&run("local").wait_with_output().unwrap());
    let expected = signals();
    assert_eq!(version(), 1);

    // Kill an executor in the middle of a task: the scheduler runs its work again on the
    // other, and the query completes with every row.
    let driver = run(&cluster.address);
    let victim = cluster.busy_executor(&[0, 1]);
    let survivor = 1 - victim;
    let before = cluster.tasks(survivor);
    cluster.executors[victim].kill().unwrap();
    cluster.executors[victim].wait().unwrap();
    let output = driver.wait_with_output().unwrap();
    assert!(output.status.success(), "{}\n{}", String::from_utf8_lossy(&output.stderr), cluster.logs());
    let scheduler = cluster.log("scheduler");
    assert!(scheduler.contains("heartbeat timed out") && scheduler.contains("on lost Executor"), "{}", cluster.logs());
    assert!(cluster.tasks(survivor) > before, "the survivor ran the lost work:\n{}", cluster.logs());
    assert_eq!(version(), 2);
    assert_eq!(signals(), expected);

    // Kill the last one: the query fails saying so, and the table stays at its version.
    let driver = run(&cluster.address);
    assert_eq!(cluster.busy_executor(&[survivor]), survivor);
    cluster.executors[survivor].kill().unwrap();
    let output = driver.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("statement 1 (COPY)") && stderr.contains("all executors were lost"), "{stderr}");
    assert_eq!(version(), 2);
    assert_eq!(signals(), expected);
}

#[test]
fn cluster_processes_refuse_bad_settings_and_say_why() {
    let error = fails(&mut mathlake(&["executor", "--scheduler", "nonsense"]));
    assert!(error.contains("`nonsense` is not a scheduler address") && error.contains("HOST:PORT"), "{error}");
    // No scheduler at that address: the executor stops, saying where it looked.
    let port = free_port().to_string();
    let (flight, grpc) = (free_port().to_string(), free_port().to_string());
    let args = ["executor", "--scheduler", &format!("127.0.0.1:{port}"), "--port", &flight, "--grpc-port", &grpc];
    let error = fails(&mut mathlake(&args));
    assert!(error.contains(&format!("scheduler 127.0.0.1:{port} stopped")), "{error}");
    assert!(error.contains("Could not connect to scheduler"), "{error}");
    // A port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let error = fails(&mut mathlake(&["scheduler", "--port", &port]));
    assert!(error.contains(&format!("the scheduler on 127.0.0.1:{port} stopped")), "{error}");
    assert!(error.contains("Address already in use"), "{error}");
    let error = fails(&mut mathlake(&["executor", "--memory-limit", "lots"]));
    assert!(error.contains("memory limit") && error.contains("lots"), "{error}");
}
