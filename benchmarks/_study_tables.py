"""The performance study's result files (`run.py`): its table rows, the speed against the fastest
sequential baseline over every device with results, its goals, and the Markdown around them."""

from __future__ import annotations

import json

from _tables import RESULTS

# The published configuration's numbers, quoted under every table for comparison.
ANCHORS = [
    dict(solver="Sequential lax.scan (A100)", iterations="-", seconds=22.6, ratio="1x"),
    dict(solver="DEER, dense, hand-damped 0.55 (A100)", iterations=139, seconds=0.135, ratio="167x"),
    dict(solver="quasi-DEER (A100)", iterations=534, seconds=22.6 / 66, ratio="66x"),
]

HEADER = (
    "| target | T | chains | solver | status | iterations | compile (s) | time (s) | runs "
    "| vs Sequential | vs fastest sequential | peak (MB) | XLA est. (MB) | max abs diff | auto pilot (s) |\n"
    f"|{'---|' * 15}"
)

PROFILE_HEADER = "| target | T | piece | seconds | / sequential chain |\n|---|---|---|---|---|"


def _num(v, fmt):
    return "n/a" if v is None else format(v, fmt)


def format_row(r):
    if "iterations" not in r:  # a skipped cell
        return f"| {r['target']} | {r['steps']} | {r['chains']} | {r['solver']} | {r['status']} |{' |' * 10}"
    status = r["status"]
    if r["certified"] < r["steps"] and r["solver"] != "Sequential" and r["iterations"] > 0:
        status += f" ({r['certified']} certified)"
    if r.get("budget"):
        status += ", budget"
    solver = r["solver"] + (f" -> {r['chosen']}" if r.get("chosen") else "")
    best = r.get("best_ratio")
    best_text = "n/a" if best is None else f"{best:.3g}x ({r['best_device']})"
    return (
        f"| {r['target']} | {r['steps']} | {r['chains']} | {solver} | {status} | {r['iterations']} "
        f"| {r['compile_s']:.1f} | {r['seconds']:.3g} | {r['runs']} | {r['ratio']:.3g}x | {best_text} "
        f"| {_num(r['peak_mb'], '.0f')} | {_num(r['xla_mb'], '.0f')} | {r['max_abs_diff']:.1e} "
        f"| {_num(r.get('pilot_s'), '.1f')} |"
    )


def other_devices(stem):
    """Sequential times from every other device's results: {(target, T, chains): (seconds, device)}."""
    best = {}
    for path in RESULTS.glob("*.json"):
        if path.stem == stem.name:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if data.get("meta", {}).get("study") != "run.py":
            continue
        for r in data.get("rows", []):
            if r["solver"] == "Sequential" and "seconds" in r:
                key = (r["target"], r["steps"], r["chains"])
                if key not in best or r["seconds"] < best[key][0]:
                    best[key] = (r["seconds"], path.stem)
    return best


def add_best_ratios(rows, stem):
    others = other_devices(stem)
    mine = {
        (r["target"], r["steps"], r["chains"]): r["seconds"]
        for r in rows
        if r["solver"] == "Sequential" and "seconds" in r
    }
    for r in rows:
        if "seconds" not in r:
            continue
        key = (r["target"], r["steps"], r["chains"])
        if key in mine and "times" not in r:  # a row without its runs' times: the ratio of the medians
            r["ratio"] = mine[key] / r["seconds"]
        options = [(mine[key], stem.name)] if key in mine else []
        if key in others:
            options.append(others[key])
        if options:
            seconds, device = min(options)
            r["best_ratio"], r["best_device"] = seconds / r["seconds"], device


def goals(rows, meta, stem):
    """The study's goals, each met / missed / not run, with its number."""
    gpu = meta["platform_kind"] != "cpu"
    find = {(r["target"], r["steps"], r["chains"], r["solver"]): r for r in rows if "seconds" in r}
    lines = []

    def parallel(target, steps, chains):
        return [
            r
            for (t, n, c, s), r in find.items()
            if (t, n, c) == (target, steps, chains) and s != "Sequential"
        ]

    if not gpu:
        cands = [r for r in parallel("gauss10", 100000, 1) if r["solver"] != "auto"]
        if cands:
            best = max(cands, key=lambda r: r["ratio"])
            verdict = "met" if best["ratio"] >= 2 else "missed"
            lines.append(
                f"- CPU, correlated Gaussian D=10 MALA, T=1e5: >= 2x over lax.scan: **{verdict}**, best "
                f"{best['ratio']:.3g}x ({best['solver']}, {best['iterations']} iterations; one iteration "
                f"costs {1 / (best['ratio'] * (best['iterations'] + 1)):.2g} sequential chains)."
            )
        else:
            lines.append("- CPU, correlated Gaussian D=10 MALA, T=1e5: >= 2x over lax.scan: not measured.")
    autos = [r for r in rows if r["solver"] == "auto" and "seconds" in r]
    if autos:
        worst = min(autos, key=lambda r: r["ratio"])
        slow = 1 / worst["ratio"] - 1
        same = sum(r.get("chosen") == "Sequential" for r in autos)
        verdict = "met" if slow <= 0.10 else "missed"
        lines.append(
            f"- {'GPU' if gpu else 'CPU'}, auto never more than 10% slower than Sequential (pilot excluded): "
            f"**{verdict}**: worst cell {worst['target']} T={worst['steps']} chains={worst['chains']}, "
            f"{100 * slow:+.0f}% ({worst['ratio']:.3g}x, chose {worst['chosen']}); over {len(autos)} cells. "
            f"With the pilot included: worst {_worst_with_pilot(autos, find)}. {same} of the {len(autos)} "
            "cells chose Sequential, whose program is the Sequential row's: their deviation from 1x is "
            "timing noise."
        )
    if gpu:
        cands = parallel("banana", 100000, 1)
        if cands:
            best = max(cands, key=lambda r: r["ratio"])
            cpu = other_devices(stem).get(("banana", 100000, 1))
            vs_cpu = (
                f"{cpu[0] / best['seconds']:.3g}x vs {cpu[1]} lax.scan" if cpu else "no CPU result to compare"
            )
            met = best["ratio"] >= 300 and cpu and cpu[0] / best["seconds"] >= 10
            lines.append(
                "- GPU, banana HMC T=1e5: >= 300x vs GPU lax.scan and >= 10x vs CPU lax.scan, no hand "
                f"damping: **{'met' if met else 'missed'}**: {best['ratio']:.3g}x vs GPU lax.scan, {vs_cpu} "
                f"({best['solver']}, {best['iterations']} iterations)."
            )
        cands = parallel("german_mala", 65536, 8)
        if cands:
            best = max(cands, key=lambda r: r.get("best_ratio") or 0)
            lines.append(
                f"- GPU, German credit 8 chains T=65536: >= 20x vs the fastest sequential baseline: "
                f"**{'met' if (best.get('best_ratio') or 0) >= 20 else 'missed'}**: "
                f"{best.get('best_ratio') or 0:.3g}x "
                f"vs {best.get('best_device')} ({best['solver']}, {best['iterations']} iterations)."
            )
        big = [r for r in rows if r["target"] == "german_mala" and r["steps"] >= 1000000]
        if big:
            ok = [r for r in big if "seconds" in r and r["solver"] != "Sequential"]
            text = "; ".join(
                f"{r['solver']}: {r['status']}" + (f" {r['seconds']:.3g} s" if "seconds" in r else "")
                for r in big
            )
            lines.append(
                "- GPU, T=1e6 with D=25 without running out of memory: "
                f"**{'met' if ok else 'missed'}**: {text}."
            )
    else:
        for goal in (
            "GPU, banana HMC T=1e5: >= 300x vs GPU lax.scan and >= 10x vs CPU lax.scan",
            "GPU, German credit 8 chains T=65536: >= 20x vs the fastest sequential baseline",
            "GPU, T=1e6 with D=25 on one GPU without running out of memory",
        ):
            lines.append(f"- {goal}: not run: no GPU in this session (`benchmarks/gpu.sh` runs it).")
    return lines


def _worst_with_pilot(autos, find):
    worst = None
    for r in autos:
        seq = find.get((r["target"], r["steps"], r["chains"], "Sequential"))
        if seq is None or r.get("pilot_s") is None:
            continue
        factor = (r["seconds"] + r["pilot_s"]) / seq["seconds"]
        if worst is None or factor > worst[0]:
            worst = (factor, r)
    if worst is None:
        return "n/a"
    r = worst[1]
    return (
        f"{worst[0]:.3g}x the Sequential time ({r['target']} T={r['steps']} chains={r['chains']}: a "
        f"{r['pilot_s']:.3g} s pilot, compilations included, for a {r['seconds']:.2g} s chain)"
    )


def write_results(stem, meta, rows, notes):
    RESULTS.mkdir(exist_ok=True)
    add_best_ratios(rows, stem)
    stem.with_suffix(".json").write_text(json.dumps(dict(meta=meta, rows=rows, notes=notes), indent=1))
    commands = list(dict.fromkeys(r["command"] for r in [*rows, *meta.get("profile", [])]))
    lines = [
        f"# Performance study on {meta['device']} ({meta['cpu_count']} CPU cores), {meta['dtype']}",
        "",
        "Reproduce (each row's own command is in the JSON):",
        "",
        *(f"    {c}" for c in commands),
        "",
        f"Machine: {meta['platform']}, jax {meta['jax']}; last run {meta['date']}.",
        "",
    ]
    if meta["platform_kind"] == "cpu":
        lines += [
            "**Measured on a shared 2-core CPU** (other jobs ran at the same time, load average well above",
            "2): absolute times are inflated and noisy. Trust the iteration counts (load-independent) and",
            "the ratios, which come from interleaved rounds in the same run (Sequential and every solver",
            "once per round; cells under 50 ms / 0.5 s get up to 20 / 10 rounds).",
            "",
        ]
    lines += [
        "Columns: iterations = parallel iterations (the maximum over chains); time = median wall time",
        "after compilation (the first run, which carries the time-budget check, left out when there are",
        "more); runs = timed runs; vs Sequential = the median Sequential (`lax.scan`) time over the",
        "interleaved rounds on this device / the row's median (above 1: faster); vs fastest sequential",
        "= the fastest Sequential time for the same cell over every device in `benchmarks/results/` /",
        "the row's, with that device named; peak = "
        + (
            "the process's peak RSS increase during the cell's first run (polled every 2 ms, a lower bound)"
            if meta["platform_kind"] == "cpu"
            else "the device's peak bytes in use minus those in use before the cell (a high-water mark)"
        )
        + "; XLA est. = the compiled program's arguments + outputs + temporaries;",
        "max abs diff = max |parallel - sequential| over all chains and steps. Status MAX_ITERATIONS:",
        "the parallel iteration was capped and the rest finished sequentially (the steps certified in",
        "parallel in brackets); 'budget': the cap came from the per-cell time budget of the row's",
        f"command (`--time-budget`, default 20 s; else `--max-iterations`, default"
        f" {meta['max_iterations']}). 'auto -> X': the solver auto chose;",
        "its pilot (compilations included) is the last column, not part of the time.",
        "",
        "## Goals (issue 6)",
        "",
        *goals(rows, meta, stem),
        "",
        "## Results",
        "",
        HEADER,
        *(format_row(r) for r in rows),
        "",
        "## Published anchors (banana HMC, T = 1e5, A100; Zoltowski et al. 2025, methods.md section 5.2)",
        "",
        "| solver | iterations | time (s) | vs GPU lax.scan |",
        "|---|---|---|---|",
        *(f"| {a['solver']} | {a['iterations']} | {a['seconds']:.3g} | {a['ratio']} |" for a in ANCHORS),
        "",
        "## Targets",
        "",
        *(f"- `{name}`: {note}" for name, note in notes.items()),
    ]
    if meta.get("profile"):
        lines += [
            "",
            "## Profile of one iteration (`--profile TARGET T`)",
            "",
            "Best of 5 runs after compilation, one chain, as a multiple of the whole sequential chain:",
            "a parallel solver pays, per iteration, the residual (vmapped step) plus its Jacobian plus",
            "its scan, so it can beat `lax.scan` only when (iterations + 1) x that sum is below 1.",
            "",
            PROFILE_HEADER,
            *(profile_row(r) for r in meta["profile"]),
        ]
    if meta.get("acceptance"):
        lines += ["", "Acceptance of the sequential chains (mean over steps and chains):", ""]
        lines += [f"- {k}: {v:.2f}" for k, v in meta["acceptance"].items()]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def profile_row(r):
    return f"| {r['target']} | {r['steps']} | {r['piece']} | {r['seconds']:.3g} | {r['per_sequential']:.3g} |"
