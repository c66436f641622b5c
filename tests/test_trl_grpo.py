"""The TRL adapter inside a real GRPOTrainer: two steps on a tiny local model, on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")


@pytest.mark.slow
def test_grpo_trainer_runs_with_rewardlab_reward(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewardlab.integrations.trl import trl_reward
    from rewardlab.tasks.arith import generate

    problems = generate(n=4, seed=0, n_ops=(1, 1))
    data = datasets.Dataset.from_list(
        [{"prompt": p.question + "\n", "answer": p.answer} for p in problems]
    )
    reward = trl_reward("math-verify", timeout_s=20)
    calls: list[list[float | None]] = []

    def recorded(**kwargs: object) -> list[float | None]:
        out = reward(**kwargs)  # type: ignore[arg-type]
        calls.append(out)
        return out

    recorded.__name__ = reward.__name__
    args = trl.GRPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=12,
        max_steps=2,
        learning_rate=1e-3,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        seed=0,
    )
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    try:
        trainer = trl.GRPOTrainer(
            model=model,
            reward_funcs=[recorded],
            args=args,
            train_dataset=data,
            processing_class=tok,
        )
        trainer.train()
    finally:
        # accelerate keeps one process-wide state; the project's own training loop (tests/train)
        # makes its Accelerator with other settings and must not inherit TRL's
        from accelerate.state import AcceleratorState

        AcceleratorState._reset_state(reset_partial_state=True)
    assert len(calls) >= 2 and all(len(c) == 4 for c in calls)
    assert all(v in (0.0, 1.0) for c in calls for v in c)  # every completion graded
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert logged and f"rewards/{reward.__name__}/mean" in logged[0]
