//! The Kubernetes manifests under `deploy/k8s` against the program they run, read from the files
//! each kustomization lists, its strategic-merge patches applied as kustomize applies them.
//! `scripts/k8s-check` renders the same folders with kubectl
//! and validates them against the Kubernetes schemas; this test checks what only this project
//! knows, with the program's own definitions rather than its `--help` text:
//!
//! - every setting a container gets (ConfigMap, env) is one `serve` or `score` reads, with a value
//!   it accepts: parsed by the same clap definition, then `ServeArgs::check`;
//! - the grace period outlasts preStop + SHUTDOWN_DELAY_SECS + DRAIN_TIMEOUT_SECS;
//! - probes (and KServe's metrics annotation) ask routes that answer 200 on the server's PORT;
//! - the memory bound of docs/serving.md ("Memory is bounded by the settings") fits the limit;
//! - Services select pods on a container port, the HPA scales what is there, every container
//!   requests CPU and memory and runs restricted;
//! - the batch Indexed Job scores every part once, onto its volume; the InferenceService names
//!   the ServingRuntime, which passes the server's checks.
//!
//! `each_broken_copy_is_caught` breaks one thing at a time and requires it to be reported.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use clap::{CommandFactory, FromArgMatches};
use ml_serving::cli::Cli;
use ml_serving::score::{ScoreArgs, Shard};
use ml_serving::server::ServeArgs;
use serde::Deserialize;
use serde_json::{Value, json};

/// A container's environment by name: the value, when the manifests give it.
type Environment = BTreeMap<String, Option<String>>;

/// Kubernetes' default terminationGracePeriodSeconds.
const DEFAULT_GRACE_SECS: f64 = 30.0;

/// Pushes the formatted problem onto `$found` unless `$holds`.
macro_rules! require {
    ($found:expr, $holds:expr, $($problem:tt)+) => {
        let holds: bool = $holds;
        if !holds {
            $found.push(format!($($problem)+));
        }
    };
}

/// The objects of a kustomization folder, following `resources` into other folders.
fn load(folder: &Path) -> Vec<Value> {
    let read = |path: &Path| -> Vec<Value> {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        serde_yaml_ng::Deserializer::from_str(&text)
            .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{path:?}: {e}")))
            .filter(|doc| !doc.is_null())
            .collect()
    };
    let kustomization = read(&folder.join("kustomization.yaml")).remove(0);
    let mut objects = Vec::new();
    for resource in list(&kustomization["resources"]) {
        let path = folder.join(text(resource));
        objects.extend(if path.is_dir() {
            load(&path)
        } else {
            read(&path)
        });
    }
    for patch in list(&kustomization["patches"]) {
        for patch in read(&folder.join(text(&patch["path"]))) {
            let target = objects
                .iter_mut()
                .find(|o| {
                    o["kind"] == patch["kind"] && o["metadata"]["name"] == patch["metadata"]["name"]
                })
                .unwrap_or_else(|| panic!("{folder:?}: a patch for nothing: {patch}"));
            merge(target, &patch);
        }
    }
    objects
}

/// A strategic-merge patch as kustomize applies these: maps merge, `null` removes a key, lists
/// of named items (containers, volumes, mounts) merge by name, other lists are replaced.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else if let Some(existing) = target.get_mut(key) {
                    merge(existing, value);
                } else {
                    target.insert(key.clone(), value.clone());
                }
            }
        }
        (Value::Array(target), Value::Array(patch))
            if patch.iter().all(|item| item["name"].is_string()) =>
        {
            for item in patch {
                match target.iter_mut().find(|t| t["name"] == item["name"]) {
                    Some(existing) => merge(existing, item),
                    None => target.push(item.clone()),
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

fn manifests(folder: &str) -> Vec<Value> {
    load(&common::repo("deploy/k8s").join(folder))
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> impl Iterator<Item = &'a Value> {
    objects.iter().filter(move |o| o["kind"] == kind)
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &Value) -> Option<&'a Value> {
    of_kind(objects, kind).find(|o| o["metadata"]["name"] == *name)
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}

/// Every pod spec with its owner: workloads', and KServe's ServingRuntime (its spec is the pod's).
fn pods(objects: &[Value]) -> Vec<(&Value, &Value)> {
    let mut pods = Vec::new();
    for owner in objects {
        match owner["kind"].as_str() {
            Some("Deployment" | "Job") => pods.push((owner, &owner["spec"]["template"]["spec"])),
            Some("ServingRuntime") => pods.push((owner, &owner["spec"])),
            _ => {}
        }
    }
    pods
}

/// What a container is given: its envFrom ConfigMaps, then its env (a value from elsewhere, such
/// as a Secret, is not known here: `None`).
fn environment(container: &Value, objects: &[Value], found: &mut Vec<String>) -> Environment {
    let mut env = BTreeMap::new();
    for source in list(&container["envFrom"]) {
        let name = &source["configMapRef"]["name"];
        let Some(map) = named(objects, "ConfigMap", name) else {
            found.push(format!("envFrom: no ConfigMap {name}"));
            continue;
        };
        let data = map["data"].as_object().into_iter().flatten();
        env.extend(data.map(|(k, v)| (k.clone(), Some(text(v)))));
    }
    for item in list(&container["env"]) {
        let value = &item["value"];
        env.insert(text(&item["name"]), (!value.is_null()).then(|| text(value)));
    }
    env
}

/// Parses a subcommand as the binary would with `args` and this environment (only it: the test's
/// own environment is not read), each variable given as the flag it stands for.
fn parse<T: FromArgMatches>(
    subcommand: &str,
    args: &[Value],
    env: &Environment,
) -> Result<T, String> {
    let cli = Cli::command();
    let definition = cli.find_subcommand(subcommand).unwrap();
    let mut argv: Vec<String> = args.iter().map(text).collect();
    if argv.is_empty() {
        argv.push(subcommand.into());
    }
    for (name, value) in env {
        let arg = definition
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == name.as_str()))
            .ok_or_else(|| format!("{name} is not a setting of `ml-serving {subcommand}`"))?;
        if let Some(value) = value {
            argv.push(format!("--{}={value}", arg.get_long().unwrap()));
        }
    }
    let matches = (definition.clone())
        .mut_args(|arg| arg.env(None::<&'static str>))
        .try_get_matches_from(&argv)
        .map_err(|e| {
            format!(
                "{}: {}",
                argv.join(" "),
                e.to_string().lines().next().unwrap()
            )
        })?;
    T::from_arg_matches(&matches).map_err(|e| e.to_string())
}

/// A memory quantity in bytes (`128Mi`, `1Gi`, `65536`).
fn bytes(quantity: &Value) -> Option<f64> {
    let quantity = quantity.as_str()?;
    let digits = quantity.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let units = [
        ("", 1.0),
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
    ];
    let unit = units
        .iter()
        .find(|(u, _)| *u == &quantity[digits.len()..])?
        .1;
    Some(digits.parse::<f64>().ok()? * unit)
}

/// The bound docs/serving.md gives on what the server holds, in bytes.
fn memory_bound(args: &ServeArgs) -> f64 {
    let (kib64, features) = (65536.0, ml_serving::dataset::DEFAULT_FEATURES.len() as f64);
    let per_connection = (args.max_header_bytes + args.body_limit_bytes) as f64 + kib64;
    let per_request = args.max_batch_rows as f64 * features * 16.0 + kib64;
    10.0 * 1048576.0
        + args.max_connections as f64 * per_connection
        + args.max_in_flight as f64 * per_request
}

/// The containerPort that a port of a probe or Service (a name or a number) stands for.
fn container_port(ports: &[Value], port: &Value) -> Option<u64> {
    let matches = |p: &&Value| p["name"] == *port || p["containerPort"] == *port;
    ports
        .iter()
        .find(matches)
        .and_then(|p| p["containerPort"].as_u64())
}

/// Everything wrong with one rendering, each problem one line naming its object.
async fn problems(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut read_config_maps = Vec::new();
    for (owner, pod) in pods(objects) {
        let grace = pod["terminationGracePeriodSeconds"]
            .as_f64()
            .unwrap_or(DEFAULT_GRACE_SECS);
        for container in list(&pod["containers"]) {
            let mut found = restricted(pod, container);
            let mut env = environment(container, objects, &mut found);
            let sources = list(&container["envFrom"]).iter();
            read_config_maps.extend(sources.map(|s| &s["configMapRef"]["name"]));
            let args = list(&container["args"]);
            match args.first().map_or("serve".into(), text).as_str() {
                "serve" => {
                    let model_name = env.get_mut("MODEL_NAME").and_then(Option::as_mut);
                    if let Some(name) = model_name.filter(|n| *n == "{{.Name}}") {
                        // KServe puts the InferenceService's name there.
                        *name = of_kind(objects, "InferenceService")
                            .next()
                            .map_or_else(String::new, |s| text(&s["metadata"]["name"]));
                    }
                    match parse::<ServeArgs>("serve", args, &env) {
                        Ok(serve) => match serve.check() {
                            Ok(_) => found.extend(server(owner, container, grace, &serve).await),
                            Err(e) => found.push(format!("{e:#}")),
                        },
                        Err(e) => found.push(e),
                    }
                }
                "score" => match parse::<ScoreArgs>("score", args, &env) {
                    Ok(score) => found.extend(indexed_job(owner, pod, &score, objects)),
                    Err(e) => found.push(e),
                },
                other => found.push(format!("runs `{other}`, neither serve nor score")),
            }
            let (kind, name) = (text(&owner["kind"]), text(&owner["metadata"]["name"]));
            let subject = format!("{kind}/{name} container {}", text(&container["name"]));
            problems.extend(found.into_iter().map(|p| format!("{subject}: {p}")));
        }
    }
    for map in of_kind(objects, "ConfigMap") {
        let name = &map["metadata"]["name"];
        let read = read_config_maps.contains(&name);
        require!(problems, read, "ConfigMap {name}: no container reads it");
    }
    problems.extend(references(objects));
    problems
}

/// Requests, a memory limit and a restricted security context (the container's or the pod's).
fn restricted(pod: &Value, container: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let resources = &container["resources"];
    for (kind, resource) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "memory"),
    ] {
        require!(
            found,
            !resources[kind][resource].is_null(),
            "no {resource} {kind}"
        );
    }
    let wanted = [
        ("runAsNonRoot", json!(true)),
        ("allowPrivilegeEscalation", json!(false)),
        ("readOnlyRootFilesystem", json!(true)),
        ("capabilities", json!({"drop": ["ALL"]})),
        ("seccompProfile", json!({"type": "RuntimeDefault"})),
    ];
    for (key, want) in wanted {
        let context = &container["securityContext"];
        let got = Some(&context[key]).filter(|v| !v.is_null());
        let got = got.unwrap_or(&pod["securityContext"][key]);
        require!(
            found,
            *got == want,
            "securityContext {key} is {got}, not {want}"
        );
    }
    found
}

/// A server container: grace period, ports, probes, memory.
async fn server(owner: &Value, container: &Value, grace: f64, serve: &ServeArgs) -> Vec<String> {
    let mut found = Vec::new();
    let pre_stop = &container["lifecycle"]["preStop"]["sleep"]["seconds"];
    let pre_stop = pre_stop.as_f64().unwrap_or(0.0);
    let (delay, drain) = (serve.shutdown_delay_secs, serve.drain_timeout_secs);
    require!(
        found,
        grace > pre_stop + delay + drain,
        "terminationGracePeriodSeconds {grace} is not above preStop {pre_stop} + SHUTDOWN_DELAY_SECS {delay} + DRAIN_TIMEOUT_SECS {drain}"
    );
    let (port, grpc_port) = (u64::from(serve.port), u64::from(serve.grpc_port));
    let ports = list(&container["ports"]);
    for number in ports
        .iter()
        .map(|p| p["containerPort"].as_u64().unwrap_or(0))
    {
        let known = [port, grpc_port].contains(&number);
        require!(
            found,
            known,
            "containerPort {number} is neither PORT nor GRPC_PORT"
        );
    }
    let mut routes = Vec::new();
    for kind in ["readinessProbe", "livenessProbe"] {
        let probe = &container[kind]["httpGet"];
        let target = container_port(ports, &probe["port"]);
        let on = &probe["port"];
        require!(
            found,
            target == Some(port),
            "{kind} port {on} is {target:?}, not PORT {port}"
        );
        routes.push((kind, text(&probe["path"])));
    }
    let annotations = &owner["spec"]["annotations"];
    if let Some(metrics_port) = annotations["prometheus.kserve.io/port"].as_str() {
        let same = metrics_port == port.to_string();
        require!(
            found,
            same,
            "prometheus.kserve.io/port {metrics_port} is not PORT {port}"
        );
        let path = text(&annotations["prometheus.kserve.io/path"]);
        routes.push(("prometheus.kserve.io/path", path));
    }
    let router = common::default_app();
    for (what, path) in routes {
        let (status, _) = common::get(&router, &path).await;
        require!(
            found,
            status == 200,
            "{what} asks {path}, which answers {status}"
        );
    }
    let mib = memory_bound(serve) / 1048576.0;
    let fits =
        bytes(&container["resources"]["limits"]["memory"]).is_some_and(|l| mib * 1048576.0 <= l);
    require!(
        found,
        fits,
        "the settings' memory bound, {mib:.0} MiB, exceeds the limit"
    );
    found
}

/// A `score` container: an Indexed Job whose parts are the shards, reading and writing a volume.
fn indexed_job(job: &Value, pod: &Value, score: &ScoreArgs, objects: &[Value]) -> Vec<String> {
    let mut found = Vec::new();
    let (spec, count) = (&job["spec"], score.shard_count.unwrap_or(0));
    let completions = spec["completions"].as_u64().unwrap_or(1);
    let indexed = spec["completionMode"] == "Indexed";
    require!(found, indexed, "score runs in an Indexed Job");
    let whole = count == completions;
    require!(
        found,
        whole,
        "SHARD_COUNT {count} is not the Job's {completions} completions"
    );
    for index in 0..completions {
        let part = Shard::new(index, count).is_ok();
        require!(found, part, "index {index} is no part of {count}");
    }
    let output = score
        .output
        .as_ref()
        .map_or(String::new(), |p| p.display().to_string());
    let own = completions == 1 || output.contains("$(JOB_COMPLETION_INDEX)");
    require!(found, own, "every index writes the same --output {output}");
    let container = &list(&pod["containers"])[0];
    for path in [score.input.display().to_string(), output] {
        let mount = list(&container["volumeMounts"])
            .iter()
            .find(|m| path.starts_with(&format!("{}/", text(&m["mountPath"]))));
        let volume = mount.and_then(|m| {
            list(&pod["volumes"])
                .iter()
                .find(|v| v["name"] == m["name"])
        });
        let claim = volume.map(|v| &v["persistentVolumeClaim"]["claimName"]);
        let there = claim
            .and_then(|c| named(objects, "PersistentVolumeClaim", c))
            .is_some();
        require!(
            found,
            there,
            "{path} is on no mounted claim of this rendering"
        );
    }
    found
}

/// What objects name: Services their pods and container ports, the HPA its target, the
/// InferenceService its runtime and model format.
fn references(objects: &[Value]) -> Vec<String> {
    let mut found = Vec::new();
    for service in of_kind(objects, "Service") {
        let (name, selector) = (&service["metadata"]["name"], &service["spec"]["selector"]);
        let selects = |labels: &Value| {
            selector
                .as_object()
                .is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels[k] == *v))
        };
        let selected: Vec<_> = of_kind(objects, "Deployment")
            .filter(|d| selects(&d["spec"]["template"]["metadata"]["labels"]))
            .collect();
        let any = !selected.is_empty();
        require!(
            found,
            any,
            "Service {name}: selector {selector} selects no Deployment's pods"
        );
        for port in list(&service["spec"]["ports"]) {
            let target = Some(&port["targetPort"]).filter(|t| !t.is_null());
            let target = target.unwrap_or(&port["port"]);
            for deployment in &selected {
                let containers = list(&deployment["spec"]["template"]["spec"]["containers"]);
                let ports: Vec<Value> = containers
                    .iter()
                    .flat_map(|c| list(&c["ports"]).to_vec())
                    .collect();
                let on = container_port(&ports, target).is_some();
                require!(
                    found,
                    on,
                    "Service {name}: targetPort {target} is no container port"
                );
            }
        }
    }
    for hpa in of_kind(objects, "HorizontalPodAutoscaler") {
        let target = &hpa["spec"]["scaleTargetRef"];
        let there = named(objects, &text(&target["kind"]), &target["name"]).is_some();
        require!(
            found,
            there,
            "HorizontalPodAutoscaler: {target} is not there"
        );
    }
    for service in of_kind(objects, "InferenceService") {
        let model = &service["spec"]["predictor"]["model"];
        let runtime = named(objects, "ServingRuntime", &model["runtime"]);
        let formats = runtime.map_or(&[][..], |r| list(&r["spec"]["supportedModelFormats"]));
        let format = &model["modelFormat"]["name"];
        let served = formats.iter().any(|f| f["name"] == *format);
        let runtime = &model["runtime"];
        require!(
            found,
            served,
            "InferenceService: no ServingRuntime {runtime} for {format}"
        );
    }
    found
}

#[tokio::test]
async fn every_rendering_agrees_with_the_program() {
    for folder in [
        "base",
        "overlays/minikube",
        "overlays/repository",
        "batch",
        "kserve",
    ] {
        let found = problems(&manifests(folder)).await;
        assert!(
            found.is_empty(),
            "deploy/k8s/{folder}:\n{}",
            found.join("\n")
        );
    }
}

/// One breakage a line: the folder, the first object of a kind, a JSON pointer in it (its
/// parent must exist), the JSON value to put there, and what the report must then say.
const BREAKAGES: &str = r#"
overlays/repository ConfigMap /data/MODEL_NAME "breast_model" => cannot be used with
overlays/repository ConfigMap /data/MAX_MODELS "0" => MAX_MODELS must be between 1
base ConfigMap /data/MODEL_BASE_PATH "/model" => MODEL_BASE_PATH is not a setting of `ml-serving serve`
base ConfigMap /data/MAX_IN_FLIGHT "0" => MAX_IN_FLIGHT must be between 1
base Deployment /spec/template/spec/containers/0/env [{"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}] => API_TOKEN is not a setting
base ConfigMap /data/LOG_JSON "maybe" => --log-json=maybe
base ConfigMap /data/DRAIN_TIMEOUT_SECS "30" => DRAIN_TIMEOUT_SECS 30
base ConfigMap /data/PORT "9000" => not PORT 9000
base ConfigMap /data/MAX_CONNECTIONS "1024" => memory bound, 356 MiB, exceeds the limit
base Deployment /spec/template/spec/terminationGracePeriodSeconds 15 => terminationGracePeriodSeconds 15 is not above
base Deployment /spec/template/spec/containers/0/readinessProbe/httpGet/path "/readyz" => readinessProbe asks /readyz, which answers 404
base Deployment /spec/template/spec/containers/0/livenessProbe/httpGet/port "grpc" => livenessProbe port "grpc" is Some(8081), not PORT 8000
base Deployment /spec/template/spec/containers/0/ports/1/containerPort 9090 => containerPort 9090 is neither PORT nor GRPC_PORT
base Deployment /spec/template/spec/containers/0/resources/requests {} => no cpu requests
base Deployment /spec/template/spec/securityContext/runAsNonRoot false => securityContext runAsNonRoot is false
base Deployment /spec/template/spec/containers/0/envFrom [] => ConfigMap "mlserving-configs": no container reads it
base Service /spec/selector {"app.kubernetes.io/name": "ml-serve"} => selects no Deployment's pods
base Service /spec/ports/0/targetPort 8080 => targetPort 8080 is no container port
base HorizontalPodAutoscaler /spec/scaleTargetRef/name "ml-serving" => is not there
batch Job /spec/template/spec/containers/0/env/0/value "3" => SHARD_COUNT 3 is not the Job's 4 completions
batch Job /spec/completionMode "NonIndexed" => score runs in an Indexed Job
batch Job /spec/template/spec/containers/0/args/4 "/data/output/scores.csv" => every index writes the same --output
batch Job /spec/template/spec/containers/0/args/2 "/tmp/rows.csv" => /tmp/rows.csv is on no mounted claim
batch Job /spec/template/spec/containers/0/args/1 "--inputs" => --inputs
kserve ServingRuntime /spec/containers/0/env/2/value "8000" => readinessProbe port 8080 is Some(8080), not PORT 8000
kserve ServingRuntime /spec/containers/0/env/5/value "30" => is not above preStop 0 + SHUTDOWN_DELAY_SECS 5 + DRAIN_TIMEOUT_SECS 30
kserve ServingRuntime /spec/annotations/prometheus.kserve.io~1path "/prometheus" => asks /prometheus
kserve InferenceService /spec/predictor/model/modelFormat/name "sklearn" => no ServingRuntime "ml-serving" for "sklearn"
"#;

#[tokio::test]
async fn each_broken_copy_is_caught() {
    for line in BREAKAGES.lines().filter(|l| !l.is_empty()) {
        let (change, expected) = line.split_once(" => ").unwrap();
        let mut words = change.splitn(4, ' ');
        let [folder, kind, pointer, value] = [(); 4].map(|_| words.next().unwrap());
        let mut objects = manifests(folder);
        let object = objects.iter_mut().find(|o| o["kind"] == kind).unwrap();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let key = key.replace("~1", "/");
        let value: Value = serde_json::from_str(value).unwrap();
        match object.pointer_mut(parent).expect(line) {
            Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
            parent => parent[key.as_str()] = value,
        }
        let found = problems(&objects).await;
        let caught = found.iter().any(|p| p.contains(expected));
        assert!(caught, "{line}\nreported instead: {found:#?}");
    }
}
