"""What bench/fleet-throughput and bench/stage-startup share: the build's binaries, a private
stack (scripts/stack.sh) and the compute-balanced cut of a model (`fleet plan --balance compute`)."""
import json, os, pathlib, subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = pathlib.Path(os.environ.get("FLEET_BUILD_DIR", ROOT / "build"))
FLEET = BUILD / "services/fleet/fleet"
STAGE = BUILD / "services/fleet-stage/fleet-stage"
LOAD = BUILD / "bench/fleet_bench_load"


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
