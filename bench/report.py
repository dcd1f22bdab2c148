#!/usr/bin/python3
"""bench/run's report: reads OUT/raw/ (the tools' own outputs) and writes OUT/results.json,
OUT/results.md and OUT/*.png.

Usage: bench/report.py OUT

raw/ holds memory.jsonl (fleet_bench_memory), models.txt ("label|file" lines), notes.txt,
meta.json, and per model slug (label with '_' for ' ') and round r:
  <slug>.fleet.r<r>.jsonl        fleet_bench_engine tgN/ppN lines
  <slug>.fleet-f32.r<r>.jsonl    the same with --activations f32 (tg64)
  <slug>.llama.r<r>.json         llama-bench -o json
  <slug>.fleet-batch.r<r>.jsonl  fleet_bench_engine batchB lines
  <slug>.llama-batch.r<r>.jsonl  llama-batched-bench --output-format jsonl
"""
import glob
import json
import os
import re
import statistics
import sys

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def json_lines(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.lstrip().startswith("{")]


def rounds(raw, slug, kind):
    """Per round (sorted by round number), the parsed output of one tool on one model."""
    files = glob.glob(os.path.join(raw, f"{slug}.{kind}.r*.json*"))
    files = [f for f in files if not f.endswith(".err")]
    files.sort(key=lambda f: int(re.search(r"\.r(\d+)\.json", f).group(1)))
    out = []
    for f in files:
        if f.endswith(".jsonl"):
            out.append(json_lines(f))
        else:
            with open(f) as fh:
                out.append(json.load(fh))
    return out


def llama_test_name(e):
    return f"pp{e['n_prompt']}" if e["n_gen"] == 0 else f"tg{e['n_gen']}"


def collect(runs_by_round, key_of, value_of):
    """{key: [value per round]} from lists of entries."""
    out = {}
    for entries in runs_by_round:
        for e in entries:
            out.setdefault(key_of(e), []).append(value_of(e))
    return out


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [l.strip() for l in f if l.strip()]


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, digits=1):
    return "–" if x is None else f"{x:,.{digits}f}"


def spread(xs):
    """(max - min) / median of the rounds, as '±N%' (half the range), or '' for one round."""
    if len(xs) < 2 or not med(xs):
        return ""
    return f"±{50 * (max(xs) - min(xs)) / med(xs):.0f}%"


def ratio(a, b):
    return a / b if a is not None and b else None


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def llama_version(meta, sample):
    v = {"bin": meta.get("llama_cpp_bin")}
    m = re.search(r"llama\.cpp-([^/]+)/", meta.get("llama_cpp_bin", ""))
    if m:
        v["llama_cpp_python"] = m.group(1)
    if sample:
        v["build_commit"] = sample.get("build_commit")
        v["build_number"] = sample.get("build_number")
        v["cpu_info"] = sample.get("cpu_info")
    return v


def main(out):
    raw = os.path.join(out, "raw")
    with open(os.path.join(raw, "meta.json")) as f:
        meta = json.load(f)
    mem = {e["bench"]: e for e in json_lines(os.path.join(raw, "memory.jsonl"))}
    triad_gbs = mem["triad"]["gb_per_s"]
    with open(os.path.join(raw, "models.txt")) as f:
        models = [l.rstrip("\n").split("|", 1) for l in f if l.strip()]
    notes = read_lines(os.path.join(raw, "notes.txt"))
    load_log = read_lines(os.path.join(raw, "load.log"))
    disturbed = read_lines(os.path.join(raw, "disturbed.txt"))
    retried = sum(1 for l in load_log if " try=1 " not in l)
    notes.append(f"{len(load_log)} measurement runs; {retried} were repeats because other processes took CPU "
                 f"time during the previous try (raw/load.log)")
    if disturbed:
        notes.append("still disturbed after 3 tries (kept, read with care): " + ", ".join(disturbed))

    results, llama_sample = [], None
    for label, path in models:
        slug = label.replace(" ", "_")
        fleet_r = rounds(raw, slug, "fleet")
        llama_r = rounds(raw, slug, "llama")
        llama_sample = llama_sample or (llama_r[0][0] if llama_r and llama_r[0] else None)
        fleet = collect(fleet_r, lambda e: e["test"], lambda e: e["tokens_per_s"])
        llama = collect(llama_r, llama_test_name, lambda e: e["avg_ts"])
        first = fleet_r[0][0]
        m = {"label": label, "file": path, "weights": first["weights"], "kernels": first["kernels"],
             "activations": first["activations"], "weight_bytes": first["weight_bytes"],
             "blas_prefill": first.get("blas_prefill"),
             "llama_model_type": llama_r[0][0].get("model_type"), "llama_model_size": llama_r[0][0].get("model_size"),
             "tests": {}}
        for t in sorted(set(fleet) | set(llama), key=lambda t: (t[:2] != "tg", int(t[2:]))):
            f_med, l_med = med(fleet.get(t, [])), med(llama.get(t, []))
            m["tests"][t] = {"fleet_runs": fleet.get(t, []), "llama_runs": llama.get(t, []),
                             "fleet": f_med, "llama": l_med, "ratio": ratio(f_med, l_med)}
        m["bandwidth_limit_tok_s"] = triad_gbs * 1e9 / m["weight_bytes"]
        tg = m["tests"].get("tg64", {})
        m["fleet_decode_fraction_of_limit"] = ratio(tg.get("fleet"), m["bandwidth_limit_tok_s"])
        m["llama_decode_fraction_of_limit"] = ratio(tg.get("llama"), m["bandwidth_limit_tok_s"])
        f32_r = rounds(raw, slug, "fleet-f32")
        if f32_r:
            runs = collect(f32_r, lambda e: e["test"], lambda e: e["tokens_per_s"]).get("tg64", [])
            m["f32_activations"] = {"fleet_runs": runs, "fleet": med(runs), "llama": tg.get("llama"),
                                    "ratio": ratio(med(runs), tg.get("llama")),
                                    "activations": f32_r[0][0]["activations"]}
        fb, lb = rounds(raw, slug, "fleet-batch"), rounds(raw, slug, "llama-batch")
        if fb:
            fbatch = collect(fb, lambda e: int(e["test"][5:]), lambda e: e["tokens_per_s"])
            lbatch = collect(lb, lambda e: e["pl"], lambda e: e["speed_tg"])
            m["batched"] = {str(b): {"fleet_runs": fbatch.get(b, []), "llama_runs": lbatch.get(b, []),
                                     "fleet": med(fbatch.get(b, [])), "llama": med(lbatch.get(b, [])),
                                     "ratio": ratio(med(fbatch.get(b, [])), med(lbatch.get(b, [])))}
                            for b in sorted(set(fbatch) | set(lbatch))}
        results.append(m)

    doc = {**meta, "cpu_model": cpu_model(), "llama_cpp": llama_version(meta, llama_sample),
           "memory": mem, "models": results, "notes": notes,
           "load_log": load_log, "disturbed": disturbed}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    write_md(out, doc)
    plot(out, doc)


def write_md(out, doc):
    mem = doc["memory"]
    L = [f"# fleet vs llama.cpp — {doc['mode']} run, {doc['date']}", "",
         f"- CPU: {doc['cpu_model']}; {doc['threads']} threads for everything; "
         f"medians of {doc['rounds']} interleaved rounds (fleet, llama.cpp, fleet, ...)",
         f"- fleet commit {doc['fleet_commit']}; llama.cpp from llama-cpp-python "
         f"{doc['llama_cpp'].get('llama_cpp_python')} (build {doc['llama_cpp'].get('build_number')}, "
         f"commit {doc['llama_cpp'].get('build_commit')})",
         f"- command: `{doc['command']}`; the run took {doc['wall_s']} s (build checks, models, measurements)", "",
         "## Machine ceilings", "",
         "| measure | value |", "|---|---|",
         f"| STREAM triad ({mem['triad']['threads']} threads, {mem['triad']['element']}, "
         f"3 × {mem['triad']['array_bytes'] >> 20} MiB) | {fmt(mem['triad']['gb_per_s'])} GB/s |",
         f"| OpenBLAS sgemm {mem['sgemm']['m']}×{mem['sgemm']['n']}×{mem['sgemm']['k']} "
         f"({mem['sgemm']['threads']} threads) | {fmt(mem['sgemm']['gflop_per_s'])} GFLOP/s |", "",
         "## Per model and test (tokens/s)", "",
         "Spread: half the range of the rounds, relative to their median (fleet / llama.cpp).", "",
         "| model | fleet weights / kernels | test | fleet | llama.cpp | fleet / llama.cpp | spread |",
         "|---|---|---|---:|---:|---:|---|"]
    for m in doc["models"]:
        for t, r in m["tests"].items():
            L.append(f"| {m['label']} | {m['weights']} / {m['kernels']} | {t} | {fmt(r['fleet'])} | "
                     f"{fmt(r['llama'])} | {fmt(r['ratio'], 2)} | "
                     f"{spread(r['fleet_runs']) or '–'} / {spread(r['llama_runs']) or '–'} |")
    L += ["", "## Decode against the memory-bandwidth limit", "",
          "Limit = triad GB/s ÷ the weight bytes fleet reads per token (fleet_bench_engine's weight_bytes). "
          "An estimate, not a hard ceiling: triad counts 3 arrays (STREAM's convention, the write-allocate "
          "read not counted) while decode mostly reads, which streams faster, so fractions a little over 1 "
          "can happen.", "",
          "| model | weight MB | limit tok/s | fleet tg64 | fleet / limit | llama.cpp tg64 | llama.cpp / limit |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for m in doc["models"]:
        tg = m["tests"].get("tg64", {})
        L.append(f"| {m['label']} | {fmt(m['weight_bytes'] / 1e6)} | {fmt(m['bandwidth_limit_tok_s'])} | "
                 f"{fmt(tg.get('fleet'))} | {fmt(m['fleet_decode_fraction_of_limit'], 2)} | "
                 f"{fmt(tg.get('llama'))} | {fmt(m['llama_decode_fraction_of_limit'], 2)} |")
    f32 = [m for m in doc["models"] if "f32_activations" in m]
    if f32:
        L += ["", "## fleet with --activations f32 (decode tg64, tokens/s)", "",
              "| model | fleet default | fleet f32 activations | llama.cpp | f32 / llama.cpp |",
              "|---|---:|---:|---:|---:|"]
        for m in f32:
            a = m["f32_activations"]
            L.append(f"| {m['label']} | {fmt(m['tests']['tg64']['fleet'])} ({m['activations']}) | "
                     f"{fmt(a['fleet'])} | {fmt(a['llama'])} | {fmt(a['ratio'], 2)} |")
    batched = [m for m in doc["models"] if "batched" in m]
    if batched:
        L += ["", "## Batched decode (16 prompt tokens, 64 decode steps; aggregate decode tokens/s)", "",
              "| model | sequences | fleet | llama.cpp (S_TG) | fleet / llama.cpp |", "|---|---:|---:|---:|---:|"]
        for m in batched:
            for b, r in m["batched"].items():
                L.append(f"| {m['label']} | {b} | {fmt(r['fleet'])} | {fmt(r['llama'])} | {fmt(r['ratio'], 2)} |")
    L += ["", "## Notes", ""] + [f"- {n}" for n in doc["notes"]]
    L += ["", "Plots: ratio.png (fleet / llama.cpp per model and test), batched.png (batched decode).", ""]
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(L))


def plot(out, doc):
    models = doc["models"]
    tests = sorted({t for m in models for t in m["tests"]}, key=lambda t: (t[:2] != "tg", int(t[2:])))
    series = tests + (["tg64 f32-act"] if any("f32_activations" in m for m in models) else [])
    fig, ax = plt.subplots(figsize=(max(8, 1.3 * len(models)), 4.5))
    width = 0.8 / len(series)
    for i, s in enumerate(series):
        vals = [(m.get("f32_activations", {}).get("ratio") if s == "tg64 f32-act"
                 else m["tests"].get(s, {}).get("ratio")) or float("nan") for m in models]
        ax.bar([x + (i - (len(series) - 1) / 2) * width for x in range(len(models))], vals, width, label=s)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(models)), [m["label"] for m in models], rotation=30, ha="right")
    ax.set_yscale("log", base=2)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("fleet / llama.cpp (tokens/s, log scale)")
    ax.set_title(f"fleet vs llama.cpp, {doc['threads']} threads ({doc['cpu_model']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "ratio.png"), dpi=120)
    plt.close(fig)

    batched = [m for m in models if "batched" in m]
    if batched:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for m in batched:
            bs = [int(b) for b in m["batched"]]
            line, = ax.plot(bs, [m["batched"][str(b)]["fleet"] for b in bs], "o-", label=f"fleet {m['label']}")
            ax.plot(bs, [m["batched"][str(b)]["llama"] for b in bs], "s--", color=line.get_color(),
                    label=f"llama.cpp {m['label']}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({int(b) for m in batched for b in m["batched"]}))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("sequences")
        ax.set_ylabel("aggregate decode tokens/s")
        ax.set_title("Batched decode (16 prompt + 64 decode tokens per sequence)")
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "batched.png"), dpi=120)
        plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: bench/report.py OUT")
    main(sys.argv[1])
