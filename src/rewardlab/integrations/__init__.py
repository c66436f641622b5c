"""Rewardlab rewards as the reward functions RL trainers call (TRL, verl, OpenRLHF).

:mod:`.common` turns (prompt, response, reference) text into rewardlab's types and scores
them with a per-sample timeout that works from any thread; :mod:`.trl`, :mod:`.verl` and
:mod:`.openrlhf` are the thin, trainer-shaped faces. See docs/serve.md.
"""
