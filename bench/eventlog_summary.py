"""Where a faerslake run's time goes, from its Spark event log (no Spark UI needed).

Place in the project: a bench tool. Run the pipeline with an event log, e.g.
``bench/run_bench.py --only-small --skip-duckdb --no-save --set 'spark.conf={"spark.eventLog.enabled": "true",
"spark.eventLog.dir": "file:///tmp/ev"}'``, then ``python bench/eventlog_summary.py /tmp/ev/<app-id>``.

Prints: the application's wall time; the share of it inside Spark jobs (the
union of job intervals) and outside them (driver work: planning, Delta log
reads and commits, Python); executor CPU and run time; counts of jobs,
stages, tasks and the tasks' median duration; the slowest jobs and SQL
executions with their call sites.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path


def event_lines(path: Path) -> Iterator[str]:
    """Lines of an event log: a file or a v2 rolling-log folder; ``.zstd`` (Spark 4's default) through
    the ``zstd`` command line tool."""
    files = sorted(path.glob("events_*"), key=lambda f: int(f.name.split("_")[1])) if path.is_dir() else [path]
    for f in files:
        if f.suffix == ".zstd":
            out = subprocess.run(["zstd", "-dc", str(f)], capture_output=True, check=False).stdout
            yield from out.decode("utf-8", "replace").splitlines()
        else:
            with open(f, encoding="utf-8") as fh:
                yield from fh


def summarise(path: Path, top: int = 15) -> dict:
    app_start = app_end = None
    jobs: dict[int, dict] = {}
    stages: dict[int, dict] = {}
    task_ms: list[int] = []
    sql: dict[int, dict] = {}
    for line in event_lines(path):
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue  # the last line of a log still being written
        ev = e.get("Event", "")
        if ev == "SparkListenerApplicationStart":
            app_start = e["Timestamp"]
        elif ev == "SparkListenerApplicationEnd":
            app_end = e["Timestamp"]
        elif ev == "SparkListenerJobStart":
            props = e.get("Properties") or {}
            jobs[e["Job ID"]] = {"start": e["Submission Time"], "stages": len(e.get("Stage Infos", [])),
                                 "site": props.get("callSite.short", ""),
                                 "desc": props.get("spark.job.description", "")}
        elif ev == "SparkListenerJobEnd":
            jobs.setdefault(e["Job ID"], {"start": e["Completion Time"]})["end"] = e["Completion Time"]
        elif ev == "SparkListenerStageCompleted":
            info = e["Stage Info"]
            acc = {a.get("Name"): a.get("Value") for a in info.get("Accumulables", [])}
            stages[info["Stage ID"]] = {
                "tasks": info.get("Number of Tasks", 0),
                "cpu_s": int(acc.get("internal.metrics.executorCpuTime", 0) or 0) / 1e9,
                "run_s": int(acc.get("internal.metrics.executorRunTime", 0) or 0) / 1e3,
                "shuffle_write_mb": int(acc.get("internal.metrics.shuffle.write.bytesWritten", 0) or 0) / 1e6,
            }
        elif ev == "SparkListenerTaskEnd":
            info = e.get("Task Info", {})
            if info.get("Finish Time") and info.get("Launch Time"):
                task_ms.append(info["Finish Time"] - info["Launch Time"])
        elif ev.endswith("SparkListenerSQLExecutionStart"):
            sql[e["executionId"]] = {"start": e["time"], "desc": (e.get("description") or "")[:90]}
        elif ev.endswith("SparkListenerSQLExecutionEnd"):
            sql.setdefault(e["executionId"], {"start": e["time"], "desc": ""})["end"] = e["time"]
    spans = sorted((j["start"], j["end"]) for j in jobs.values() if "end" in j)
    in_jobs, cur_s, cur_e = 0, None, None
    for s, t in spans:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                in_jobs += cur_e - cur_s
            cur_s, cur_e = s, t
        else:
            cur_e = max(cur_e, t)
    if cur_e is not None:
        in_jobs += cur_e - cur_s
    wall = ((app_end or (spans[-1][1] if spans else 0)) - (app_start or 0)) / 1e3
    return {
        "app_wall_s": round(wall, 1),
        "inside_jobs_s": round(in_jobs / 1e3, 1),
        "outside_jobs_s": round(wall - in_jobs / 1e3, 1),
        "jobs": len(jobs), "stages": len(stages), "tasks": len(task_ms),
        "median_task_ms": statistics.median(task_ms) if task_ms else None,
        "executor_cpu_s": round(sum(s["cpu_s"] for s in stages.values()), 1),
        "executor_run_s": round(sum(s["run_s"] for s in stages.values()), 1),
        "shuffle_write_mb": round(sum(s["shuffle_write_mb"] for s in stages.values()), 1),
        "slowest_jobs": [
            {"job": k, "s": round((j["end"] - j["start"]) / 1e3, 1), "stages": j.get("stages"),
             "site": j.get("site"), "desc": j.get("desc")}
            for k, j in sorted(jobs.items(), key=lambda kv: kv[1].get("start", 0) - kv[1].get("end", 0))[:top]
            if "end" in j],
        "slowest_sql": [
            {"id": k, "s": round((q["end"] - q["start"]) / 1e3, 1), "desc": q["desc"]}
            for k, q in sorted(sql.items(), key=lambda kv: kv[1]["start"] - kv[1].get("end", kv[1]["start"]))[:top]
            if "end" in q],
        "sql_executions": len(sql),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("eventlog", type=Path)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)
    print(json.dumps(summarise(args.eventlog, args.top), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
