"""A tiny BERT encoder + WordPiece tokenizer for tests, built in-process (no network, < 1 s).

>>> path = build_tiny_bert(tmp_path / "bert")  # doctest: +SKIP
>>> EncoderFeaturizer(path)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

_TEXT = "the a cat dog sat on mat ran fast slow is was good bad yes no please thanks help"
_MORE = "human assistant what how why i you it can do not sorry that this"
WORDS = tuple(f"{_TEXT} {_MORE}".split(" "))


def build_tiny_bert(out_dir: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer BERT (hidden 16) and its lower-case WordPiece tokenizer."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?:'")
    vocab = special + list(WORDS) + chars + ["##" + c for c in chars]
    (out_dir / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tok = BertTokenizer(vocab=str(out_dir / "vocab.txt"), do_lower_case=True)
    if tok.tokenize("the cat") != ["the", "cat"]:  # the vocab argument's name moved in 5.x
        raise RuntimeError("tiny BERT tokenizer did not load its vocabulary")
    tok.save_pretrained(out_dir)
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(out_dir)
    return out_dir
