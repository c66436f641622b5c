"""Published reward models scored by their own recipes, from local weights only.

Each module repeats one model card's recipe (prompt, separator or tag, the head and the
position it is read at); the registry names them (``rewardlab.rewards.registry``):

=================  ============================================  ==============================
registry spec      model                                         module
=================  ============================================  ==============================
``qwen-prm``       Qwen2.5-Math-PRM-7B / 72B                     :mod:`.qwen_prm`
``math-shepherd``  math-shepherd-mistral-7b-prm                  :mod:`.math_shepherd`
``seqcls-rm``      Skywork-Reward(-V2) and any 1-label seq-cls   :mod:`.outcome`
``armorm``         ArmoRM-Llama3-8B-v0.1                         :mod:`.outcome`
``eurus-prm``      EurusPRM-Stage1/2 (+ reference model)         :mod:`.eurus`
=================  ============================================  ==============================

``qwen-prm:path=/models/Qwen2.5-Math-PRM-7B`` loads a directory; nothing is downloaded and
no checkpoint's own modeling code runs. See ``docs/published_rms.md``.
"""

from rewardlab.rewards.presets.eurus import EurusPRM, load_eurus_prm
from rewardlab.rewards.presets.math_shepherd import MathShepherdPRM, load_math_shepherd
from rewardlab.rewards.presets.outcome import ArmoRM, SeqClsRM, load_armorm, load_seqcls_rm
from rewardlab.rewards.presets.qwen_prm import QwenPRM, load_qwen_prm

__all__ = [
    "ArmoRM",
    "EurusPRM",
    "MathShepherdPRM",
    "QwenPRM",
    "SeqClsRM",
    "load_armorm",
    "load_eurus_prm",
    "load_math_shepherd",
    "load_qwen_prm",
    "load_seqcls_rm",
]
