"""rewardlab: reward models and verifiers for LLM reasoning.

Nothing happens at import: submodules are imported where they are used.
"""

__version__ = "0.1.0"
