#!/usr/bin/env python3
"""The aismr graph on LangGraph, for the ratios the engine and pipeline targets are set in.

The engine's target is a multiple of LangGraph's whole aismr runs per second with its SQLite
checkpointer; the machines we measure on differ by about 2x, so the two are measured one after
the other on the same machine (docs/performance.md).

Graph: iggy -> gate_ideate (interrupt) -> riley -> alex -> gate_prepublish (interrupt)
       -> quinn -> record_success -> END, every persona instant, no HTTP.
One run = invoke (stops at gate_ideate) + resume (stops at gate_prepublish) + resume (ends).
Each run has its own thread_id; checkpoints go to a file-backed SQLite DB (one per mode).

  python3 -m venv .venv-compare
  .venv-compare/bin/pip install langgraph==1.2.24 langgraph-checkpoint-sqlite==3.1.2 aiosqlite==0.22.1
  .venv-compare/bin/python scripts/compare/langgraph_aismr.py --mode sync --runs 500
"""
import argparse, asyncio, os, sqlite3, statistics, tempfile, time
from typing import Any, TypedDict

from langgraph.graph import StateGraph, START, END
from langgraph.types import Command, interrupt
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver


class State(TypedDict, total=False):
    project: str
    ideas: list[str]
    ideate_approved: bool
    clips: list[dict[str, Any]]
    render_url: str
    prepublish_approved: bool
    publish_urls: list[str]
    status: str


# --- Instant personas: each returns a small dict update immediately. ---
def iggy(s: State) -> State:
    return {"ideas": ["soap cutting", "kinetic sand"], "status": "ideated"}

def gate_ideate(s: State) -> State:
    # Human-in-the-loop gate: pauses the run until the driver resumes it.
    answer = interrupt({"gate": "ideate", "ideas": s["ideas"]})
    assert answer["approved"]
    return {"ideate_approved": True}

def riley(s: State) -> State:
    return {"clips": [{"i": i, "prompt": f"clip {i}", "secs": 8} for i in range(12)],
            "status": "scripted"}

def alex(s: State) -> State:
    return {"render_url": f"https://render.example/{s['project']}.mp4", "status": "rendered"}

def gate_prepublish(s: State) -> State:
    answer = interrupt({"gate": "prepublish", "render_url": s["render_url"]})
    assert answer["approved"]
    return {"prepublish_approved": True}

def quinn(s: State) -> State:
    return {"publish_urls": [f"https://tiktok.example/{s['project']}",
                             f"https://youtube.example/{s['project']}"]}

def record_success(s: State) -> State:
    return {"status": "published"}


def build_graph() -> StateGraph:
    g = StateGraph(State)
    order = [iggy, gate_ideate, riley, alex, gate_prepublish, quinn, record_success]
    for fn in order:
        g.add_node(fn.__name__, fn)
    g.add_edge(START, "iggy")
    for a, b in zip(order, order[1:]):
        g.add_edge(a.__name__, b.__name__)
    g.add_edge("record_success", END)
    return g


RESUME = Command(resume={"approved": True})


def check_end(out: dict) -> None:
    # Guard: never silently measure failing/incomplete runs.
    assert out.get("status") == "published" and len(out["clips"]) == 12, out


def check_paused(out: dict, gate: str) -> None:
    intr = out.get("__interrupt__")
    assert intr and intr[0].value["gate"] == gate, out


# ----------------------------------------------------------------- sync mode
def bench_sync(runs: int, tmp: str, durability: str) -> None:
    conn = sqlite3.connect(os.path.join(tmp, "sync.sqlite"), check_same_thread=False)
    app = build_graph().compile(checkpointer=SqliteSaver(conn))
    t0 = time.perf_counter()
    for i in range(runs):
        cfg = {"configurable": {"thread_id": f"sync-{i}"}}
        check_paused(app.invoke({"project": f"p{i}"}, cfg, durability=durability), "ideate")
        check_paused(app.invoke(RESUME, cfg, durability=durability), "prepublish")
        check_end(app.invoke(RESUME, cfg, durability=durability))
    dt = time.perf_counter() - t0
    conn.close()
    print(f"langgraph sync sqlite: {runs / dt:.1f} runs/s ({runs} runs)")


# ---------------------------------------------------------------- async mode
async def async_pass(app, runs: int, k: int, tag: str, durability: str):
    """Run `runs` runs with at most k in flight; return (elapsed s, resume latencies)."""
    sem, lat = asyncio.Semaphore(k), []

    async def resume(cfg):
        t = time.perf_counter()
        out = await app.ainvoke(RESUME, cfg, durability=durability)
        lat.append(time.perf_counter() - t)
        return out

    async def one(i):
        async with sem:
            cfg = {"configurable": {"thread_id": f"{tag}-{i}"}}
            check_paused(await app.ainvoke({"project": f"p{i}"}, cfg, durability=durability), "ideate")
            check_paused(await resume(cfg), "prepublish")
            check_end(await resume(cfg))

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(runs)))
    return time.perf_counter() - t0, lat


def pct(xs, p):  # nearest-rank percentile, milliseconds
    xs = sorted(xs)
    return 1000 * xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs)) - 1))]


async def bench_async(runs: int, k: int, tmp: str, durability: str) -> None:
    async with AsyncSqliteSaver.from_conn_string(os.path.join(tmp, "async.sqlite")) as saver:
        app = build_graph().compile(checkpointer=saver)
        for kk, label in ((k, "loaded"), (1, "idle")):
            dt, lat = await async_pass(app, runs, kk, f"k{kk}", durability)
            print(f"langgraph async sqlite K={kk}: {runs / dt:.1f} runs/s ({runs} runs)")
            print(f"langgraph async sqlite resume latency {label} (K={kk}): "
                  f"median {statistics.median(lat) * 1000:.2f} ms, p99 {pct(lat, 99):.2f} ms "
                  f"({len(lat)} resumes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["sync", "async", "all"], default="all")
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--durability", choices=["sync", "async", "exit"], default="async",
                    help="LangGraph checkpoint durability: async (LangGraph's default) writes a "
                         "checkpoint while the next step runs, sync before it starts")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lgbench-") as tmp:
        if a.mode in ("sync", "all"):
            bench_sync(a.runs, tmp, a.durability)
        if a.mode in ("async", "all"):
            asyncio.run(bench_async(a.runs, a.in_flight, tmp, a.durability))


if __name__ == "__main__":
    main()
