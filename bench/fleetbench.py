"""What the fleet benches share (fleet-throughput, stage-startup, structured-outputs, tool-calls):
the build's binaries, a private stack (scripts/stack.sh), the compute-balanced cut of a model
(`fleet plan --balance compute`), a fleet of workers, and requests through the topics with kcat."""
import json, os, pathlib, re, subprocess, time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = pathlib.Path(os.environ.get("FLEET_BUILD_DIR", ROOT / "build"))
FLEET = BUILD / "services/fleet/fleet"
STAGE = BUILD / "services/fleet-stage/fleet-stage"
LOAD = BUILD / "bench/fleet_bench_load"
INGRESS = BUILD / "services/fleet-ingress/fleet-ingress"


def compute_plan(model, stages, tmp):
    """The stages of `fleet plan --balance compute` over `stages` equal workers: dicts with
    "layers" [first, end) and "weight_bytes"."""
    workers = pathlib.Path(tmp) / f"workers{stages}.yaml"
    workers.write_text("".join(f"- {{name: w{k}, memory: 64GiB}}\n" for k in range(stages)))
    out = subprocess.run([str(FLEET), "plan", "--model", str(model), "--workers", str(workers), "--balance", "compute",
                          "--json"], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["stages"]


def stack_up(directory):
    """Starts Kafka + Redis in `directory`; returns os.environ plus the stack's settings."""
    subprocess.run([str(ROOT / "scripts/stack.sh"), "up", str(directory)], check=True, stdout=subprocess.DEVNULL)
    env = dict(os.environ)
    for line in (pathlib.Path(directory) / "stack.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.replace("export ", "").split("=", 1)
            env[k] = v.strip("'\"")
    return env


def stack_down(directory):
    subprocess.run([str(ROOT / "scripts/stack.sh"), "down", str(directory)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def kcat_requests(brokers, tag, records, timeout_s=600):
    """Produces `records` (dicts with an "id") to <tag>.prompts with kcat and reads <tag>.results
    with kcat until each has its terminal event; returns {id: done or error event}."""
    lines = "".join(f"{r['id']}\t{json.dumps(r)}\n" for r in records)
    subprocess.run(["kcat", "-P", "-b", brokers, "-t", f"{tag}.prompts", "-K", "\t"], input=lines, text=True, check=True)
    ids = {r["id"] for r in records}
    done, deadline = {}, time.time() + timeout_s
    while len(ids & done.keys()) < len(ids) and time.time() < deadline:
        out = subprocess.run(["kcat", "-C", "-b", brokers, "-X", "isolation.level=read_uncommitted", "-t", f"{tag}.results", "-o", "beginning", "-e", "-q"],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            ev = json.loads(line)
            if ev.get("type") in ("done", "error"):
                done[ev["id"]] = ev
        time.sleep(1)
    return done


class Fleet:
    """One fleet-stage worker per cut on a running stack (and, with ingress=True, a fleet-ingress
    on a free port: .base_url), from a deployment file written to `tmp`."""
    def __init__(self, env, model, cuts, threads, tmp, tag, partitions, ingress=False):
        self.tmp, self.procs = tmp, []
        self.config = tmp / f"{tag}.yaml"
        stages = "".join(f"  - layers: [{a}, {b}]\n" for a, b in cuts)
        self.config.write_text(
            f"kafka: {{brokers: \"{env['FLEET_KAFKA_BROKERS']}\", topic_prefix: {tag}, partitions: {partitions}}}\n"
            f"redis: {{url: \"{env['FLEET_REDIS_URL']}\"}}\n"
            f"model: {{name: {tag}, path: \"{model}\"}}\nstages:\n{stages}"
            "batching: {max_batch_tokens: 512, window_ms: 0, prefill_chunk: 256}\n"
            "kv: {budget_bytes: 2GiB, max_requests: 256}\n"
            "timeouts: {request_s: 600, heartbeat_ttl_s: 3, finished_request_ttl_s: 600}\n")
        for k in range(len(cuts)):
            logf = open(tmp / f"{tag}-stage{k}.log", "w")
            self.procs.append((subprocess.Popen([str(STAGE), "--config", str(self.config), "--stage", str(k),
                                                 "--threads", str(threads)], stdout=logf, stderr=subprocess.STDOUT,
                                                env=env), tmp / f"{tag}-stage{k}.log"))
        deadline = time.time() + 300
        for p, path in self.procs:
            while True:
                text = path.read_text()
                if "] ready" in text and "] assignment" in text:
                    break
                if p.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"worker did not start: {path}\n{text[-3000:]}")
                time.sleep(0.1)
        self.base_url = None
        if ingress:
            path = tmp / f"{tag}-ingress.log"
            p = subprocess.Popen([str(INGRESS), "--config", str(self.config), "--host", "127.0.0.1", "--port", "0"],
                                 stdout=open(path, "w"), stderr=subprocess.STDOUT, env=env)
            self.procs.append((p, path))
            while not self.base_url:
                m = re.search(r"listening on (http://\S+)", path.read_text())
                if m:
                    self.base_url = m.group(1)
                elif p.poll() is not None or time.time() > deadline:
                    raise SystemExit(f"fleet-ingress did not start: {path}\n{path.read_text()[-3000:]}")
                else:
                    time.sleep(0.1)

    def stop(self):
        for p, _ in self.procs:
            p.terminate()
        for p, _ in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
