"""longrun.judge: the pass/fail rules of the long-run benchmark (the run itself is a benchmark, not a test)."""
import math

from lightglue_ros.tools.longrun import Block, Report, judge


def report(first_ms, last_ms, rss=(600.0, 610.0), threads=(19, 19, 19)):
    def block(ms):
        return Block(1, 1000, 1000, *ms, rss_mb=rss[1], threads=threads[-1])

    r = Report(frames=5000, width=160, height=120, backend="lightglue", max_keypoints=256, torch_threads=1,
               sequence=120, warmup=500)
    r.rss_warm_mb, r.rss_max_after_warm_mb = rss
    r.threads_after_warm = list(threads)
    r.blocks = [block(first_ms), block(last_ms)]
    return r


def test_steady_run_passes():
    assert judge(report((300, 400, 480), (310, 420, 500)), 50) == {"memory": True, "threads": True, "latency": True}


def test_slower_last_block_fails_but_a_faster_one_passes():
    assert not judge(report((300, 400, 480), (380, 400, 480)), 50)["latency"]  # p50 +27 % > 25 %
    assert not judge(report((300, 400, 480), (300, 400, 970)), 50)["latency"]  # p99 doubled and more
    assert judge(report((300, 400, 480), (150, 200, 240)), 50)["latency"]  # faster after a slow warm-up
    assert not judge(report((300, 400, 480), (math.nan, 400, 480)), 50)["latency"]  # no latencies: not a pass


def test_memory_growth_and_thread_changes_fail():
    assert not judge(report((300, 400, 480), (300, 400, 480), rss=(600.0, 651.0)), 50)["memory"]
    assert judge(report((300, 400, 480), (300, 400, 480), rss=(600.0, 649.0)), 50)["memory"]
    assert not judge(report((300, 400, 480), (300, 400, 480), threads=(19, 20, 19)), 50)["threads"]


def test_realtime_runs_also_judge_dropped_frames():
    r = report((300, 400, 480), (300, 400, 480))
    assert "dropped" not in judge(r, 50)  # lock-step drops nothing by construction
    r.realtime, r.dropped = True, 500  # 10 % of 5000
    assert judge(r, 50, max_dropped=0.1)["dropped"]
    r.dropped = 501
    assert not judge(r, 50, max_dropped=0.1)["dropped"]
