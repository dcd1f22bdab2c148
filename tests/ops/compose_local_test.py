#!/usr/bin/env python3
"""compose/ without containers: the compose file's topology, commands and environment, run as
local processes against a local stack (scripts/stack.sh).

Checks, from compose/docker-compose.yml, compose/fleet.yaml and compose/prometheus.yml:
  - one stage service per stage of the config, each `fleet-stage --config <the mounted config>
    --stage K`, scalable (no container_name, no host ports); Redis with AOF on and maxmemory
    set; Kafka in KRaft mode from the official apache/kafka image with retention set; every
    fleet service scraped by Prometheus;
  - then runs each stage service's command (container paths mapped to the host through the
    service's volumes, the kafka/redis service addresses to the local stack, the metrics port
    and the ingress port made free ones: one network namespace here) with the service's
    environment, stage 1 scaled to 2 replicas like `--scale stage1=2`, and checks that
    `fleet submit` gets exactly `fleet generate`'s text. The ingress service runs too when
    services/fleet-ingress is built: its /health must answer and its /v1/completions return the
    same text.
Env: FLEET_BUILD_DIR, FLEET_SOURCE_ROOT.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

SRC = os.environ.get("FLEET_SOURCE_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
BUILD = os.environ.get("FLEET_BUILD_DIR") or os.path.join(SRC, "build")
COMPOSE_DIR = os.path.join(SRC, "compose")
BINARIES = {
    "fleet": os.path.join(BUILD, "services/fleet/fleet"),
    "fleet-stage": os.path.join(BUILD, "services/fleet-stage/fleet-stage"),
    "fleet-ingress": os.path.join(BUILD, "services/fleet-ingress/fleet-ingress"),
}
WAIT_S = 120


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check_topology(compose, cfg, prom):
    services = compose["services"]
    stages = sorted(s for s in services if re.fullmatch(r"stage\d+", s))
    if stages != [f"stage{k}" for k in range(len(cfg["stages"]))]:
        fail(f"stage services {stages} do not match the config's {len(cfg['stages'])} stages")
    for k, name in enumerate(stages):
        svc = services[name]
        cmd = svc["command"]
        if cmd[0] != "fleet-stage" or cmd[cmd.index("--stage") + 1] != str(k):
            fail(f"{name}: command {cmd} is not fleet-stage --stage {k}")
        if "container_name" in svc or "ports" in svc:
            fail(f"{name}: container_name / ports prevent docker compose up --scale {name}=N")
    redis_cmd = " ".join(services["redis"]["command"])
    if "--appendonly yes" not in redis_cmd or "--maxmemory " not in redis_cmd:
        fail(f"redis: AOF and maxmemory must be set: {redis_cmd}")
    kafka = services["kafka"]
    if not kafka["image"].startswith("apache/kafka:"):
        fail("kafka: not the official apache/kafka image")
    env = kafka["environment"]
    if "controller" not in env.get("KAFKA_PROCESS_ROLES", "") or "KAFKA_LOG_RETENTION_HOURS" not in env:
        fail("kafka: KRaft roles and retention must be set")
    scraped = set()
    for job in prom["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            scraped.update(sd["names"])
    for name, svc in services.items():
        if svc.get("image", "").startswith("fleet:") and name not in scraped:
            fail(f"prometheus does not scrape {name}")


def volume_map(svc):
    """container path -> host path, from 'host:container[:ro]' entries relative to compose/."""
    out = {}
    for v in svc.get("volumes", []):
        host, container = v.split(":")[:2]
        if host.startswith(".") or host.startswith("/"):
            out[container] = os.path.normpath(os.path.join(COMPOSE_DIR, host))
    return out


def to_host(text, vmap):
    for container in sorted(vmap, key=len, reverse=True):
        text = text.replace(container, vmap[container])
    return text


def main():
    compose = yaml.safe_load(open(os.path.join(COMPOSE_DIR, "docker-compose.yml")))
    cfg = yaml.safe_load(open(os.path.join(COMPOSE_DIR, "fleet.yaml")))
    prom = yaml.safe_load(open(os.path.join(COMPOSE_DIR, "prometheus.yml")))
    check_topology(compose, cfg, prom)
    for b in ("fleet", "fleet-stage"):
        if not os.access(BINARIES[b], os.X_OK):
            fail(f"{BINARIES[b]} is not built")

    os.makedirs(os.path.join(BUILD, "tests/ops"), exist_ok=True)
    work = tempfile.mkdtemp(prefix="compose.", dir=os.path.join(BUILD, "tests/ops"))
    stack = os.path.join(work, "stack")
    procs, ok = [], False
    try:
        subprocess.run([os.path.join(SRC, "scripts/stack.sh"), "up", stack], check=True, stdout=subprocess.DEVNULL)
        local = dict(l.strip().split("=", 1) for l in open(os.path.join(stack, "stack.env")) if "=" in l)
        prefix = f"composetest-{os.getpid()}"
        # The service addresses of the compose network, as the local stack has them.
        addr = {"kafka:9092": local["FLEET_KAFKA_BROKERS"], "redis://redis:6379/0": local["FLEET_REDIS_URL"]}
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ingress_port = s.getsockname()[1]

        def service_process(name, replica):
            svc = compose["services"][name]
            vmap = volume_map(svc)
            # The mounted deployment config, its container paths mapped, the topic prefix unique.
            config_container = next(c for c in vmap if c.endswith(".yaml"))
            text = to_host(open(vmap[config_container]).read(), vmap)
            text = re.sub(r"(?m)^(  topic_prefix:) \S+", rf"\1 {prefix}", text)
            # One network namespace here instead of one per container: replicas cannot all
            # listen on the metrics port, so each takes a free one (registered in membership).
            text, n = re.subn(r"(?m)^(metrics:\n  port:) \d+", r"\1 0", text)
            if n != 1:
                fail("compose/fleet.yaml: no metrics.port to make free")
            # One file per process, never rewritten: a worker started earlier may still be
            # reading its own (a shared file truncated by the next start read as empty once).
            local_config = os.path.join(work, f"{name}-{replica}.yaml")
            with open(local_config, "w") as f:
                f.write(text)
            cmd = [BINARIES.get(svc["command"][0], svc["command"][0])] + [
                local_config if a == config_container else to_host(a, vmap) for a in svc["command"][1:]]
            if "--port" in cmd:  # the published port may be taken on this machine
                cmd[cmd.index("--port") + 1] = str(ingress_port)
            env = dict(os.environ)
            for k, v in svc.get("environment", {}).items():
                env[k] = addr.get(str(v), str(v))
            log = open(os.path.join(work, f"{name}-{replica}.log"), "w")
            p = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
            procs.append((p, log.name))
            return p, log.name, local_config, env

        started = []
        for k in range(len(cfg["stages"])):
            for r in range(2 if k == 1 else 1):  # like docker compose up --scale stage1=2
                started.append(service_process(f"stage{k}", r))
        config_path, env = started[0][2], started[0][3]
        deadline = time.time() + WAIT_S
        for p, log, _, _ in started:
            while "] ready" not in open(log).read():
                if p.poll() is not None:
                    fail(f"{log}: exited {p.returncode} before ready:\n" + open(log).read()[-2000:])
                if time.time() > deadline:
                    fail(f"{log}: not ready after {WAIT_S} s")
                time.sleep(0.1)
        ingress = None
        if os.access(BINARIES["fleet-ingress"], os.X_OK):
            ingress = service_process("ingress", 0)

        model = to_host(cfg["model"]["path"], volume_map(compose["services"]["stage0"]))
        prompt, n = "Once upon a time", 40
        ref = subprocess.run([BINARIES["fleet"], "generate", "--model", model, "--prompt", prompt, "--temperature", "0",
                              "--max-tokens", str(n)], check=True, capture_output=True, text=True).stdout
        got = subprocess.run([BINARIES["fleet"], "submit", "--config", config_path, "--prompt", prompt, "--temperature",
                              "0", "--max-tokens", str(n), "--timeout-s", str(WAIT_S)], env=env, capture_output=True,
                             text=True)
        if got.returncode != 0:
            fail(f"fleet submit exited {got.returncode}: {got.stderr}")
        if got.stdout != ref:
            fail(f"compose topology generated {got.stdout!r}, fleet generate {ref!r}")
        status = subprocess.run([BINARIES["fleet"], "status", "--config", config_path], env=env, check=True,
                                capture_output=True, text=True).stdout
        if not status.startswith(f"{len(started)} live worker(s)"):
            fail("fleet status does not list the 3 workers:\n" + status)
        if ingress:
            port = ingress_port
            deadline = time.time() + WAIT_S
            while True:
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                        break
                except Exception:
                    pass
                if ingress[0].poll() is not None or time.time() > deadline:
                    fail("the ingress did not become healthy:\n" + open(ingress[1]).read()[-2000:])
                time.sleep(0.2)
            body = json.dumps({"model": cfg["model"]["name"], "prompt": prompt, "max_tokens": n,
                               "temperature": 0}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})
            text = json.load(urllib.request.urlopen(req, timeout=WAIT_S))["choices"][0]["text"]
            if text != ref.rstrip("\n"):
                fail(f"the ingress completed {text!r}, fleet generate {ref!r}")
        else:
            print("note: fleet-ingress not built; its service was not run", file=sys.stderr)
        print(status, file=sys.stderr)
        print("compose_local_test: OK", file=sys.stderr)
        ok = True
    finally:
        for p, _ in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p, log in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run([os.path.join(SRC, "scripts/stack.sh"), "down", stack], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            for _, log in procs:
                print(f"=== {log}\n" + open(log).read()[-1500:], file=sys.stderr)
            print(f"logs kept in {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
