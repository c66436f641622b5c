"""``rewardlab serve``: any rewardlab reward over HTTP (OpenRLHF's ``/get_reward`` and a richer
``/score``), with dynamic micro-batching, admission control, deadlines and a graceful drain.
See docs/serve.md.
"""
