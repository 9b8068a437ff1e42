#!/usr/bin/env python3
"""Trains a LoRA adapter for all-MiniLM-L6-v2 on mined (docstring, function) pairs (issue 16, tier 2).

LoRA (Hu et al. 2021) adds a low-rank delta `(alpha / rank) · B · A` to each of MiniLM's dense
layers (attention query, key, value and output; feed-forward intermediate and output), with the
base weights frozen. It is trained contrastively: InfoNCE with in-batch negatives, docstring →
function and function → docstring, temperature 0.05, batches of one language. With --racs N, each
batch also gets N copies of its pooled pairs augmented at the representation level (RACS, Li et al.
2022: linear inter/extrapolation, binary interpolation, Gaussian scaling, dropout — the operations
and parameters of bitseek-learn's `augment` module) as extra positives and negatives. Training
stops early when the validation MRR (each language's validation pairs ranked against all of that
language's validation functions) has not improved for --patience evaluations; the best adapter is
kept.

Writes (default paths):
  crates/bitseek-embed/adapters/minilm-code-lora.safetensors
      `<module>.lora_A` [rank, in] and `<module>.lora_B` [out, rank] (f32) for each adapted layer,
      metadata: format, rank, alpha, the base weights' SHA-256 and the training settings.
      bitseek-embed merges it into the weights at load: W + (alpha / rank) · B · A.
  crates/bitseek-embed/tests/data/adapter-reference.json
      embeddings of the parity texts (tests/data/reference.json) by the adapted model in torch,
      adapter applied on the fly (unmerged), 256-token window: tests/adapter.rs checks that
      bitseek's merged encoder gives cosine >= 0.999.

Data: the pairs that scripts/mine_pairs.py writes, `<data>/{rust,python}-{train,val}.jsonl`
(package-disjoint splits; the dev evaluation packages are never in them).

Settings (the reduced one is the default: on 2 idle CPU cores a step of 32 pairs takes about 15 s):
  reduced (CPU):  --max-length 128 --pairs 4000 --epochs 1 --batch-size 32 --rank 8
  full (GPU):     --device cuda --max-length 256 --pairs 0 --per-package 0 --epochs 3
                  --batch-size 128 --rank 16 --eval-every 100   (all mined train pairs, about 18k)
The shipped adapter is from a reduced run with more pairs: --pairs 8000 --eval-every 25 --patience 4
--racs 2, stopped (for time, on 2 cores shared with builds) after 110 of its 250 steps; the file
is its best validation step, 75 (the adapter is written at each improvement).

    python3 scripts/train_adapter.py --data DIR [--racs 2] [settings]

It creates bench/.venv-st (git-ignored) with sentence-transformers and CPU torch from PyPI (through
scripts/torch_env.py, as make_embedding_reference.py and bench/embed_speed.py) and loads the base model only from the local directory
`bitseek model fetch` unpacked (or --model-dir, or $BITSEEK_MODEL_DIR); HF_HUB_OFFLINE=1, nothing
is downloaded from a model hub.
"""

import argparse
import hashlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path

from torch_env import default_model_dir, ensure_venv

ROOT = Path(__file__).resolve().parent.parent
ADAPTER = ROOT / "crates" / "bitseek-embed" / "adapters" / "minilm-code-lora.safetensors"
REFERENCE_IN = ROOT / "crates" / "bitseek-embed" / "tests" / "data" / "reference.json"
REFERENCE_OUT = ROOT / "crates" / "bitseek-embed" / "tests" / "data" / "adapter-reference.json"
# The dense layers of each BERT layer that get an adapter, as named in model.safetensors.
TARGETS = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
]
FORMAT = "bitseek-lora/1"

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_pairs(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def sample(pairs: list[dict], n: int, per_package: int, rnd: random.Random) -> list[dict]:
    """At most `per_package` pairs of each package, then at most `n` in all (0: no limit)."""
    by: dict[str, list[dict]] = {}
    for p in pairs:
        by.setdefault(p["package"], []).append(p)
    out = []
    for name in sorted(by):
        rows = by[name][:]
        rnd.shuffle(rows)
        out += rows[:per_package] if per_package else rows
    rnd.shuffle(out)
    return out[:n] if n else out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder with {rust,python}-{train,val}.jsonl")
    ap.add_argument("--model-dir", type=Path, default=default_model_dir())
    ap.add_argument("--out", type=Path, default=ADAPTER)
    ap.add_argument("--reference", type=Path, default=REFERENCE_OUT, help="parity reference to write ('' for none)")
    ap.add_argument("--langs", default="rust,python")
    ap.add_argument("--pairs", type=int, default=4000, help="training pairs in all, split evenly by language (0: all)")
    ap.add_argument("--per-package", type=int, default=200, help="at most this many training pairs per package (0: no cap)")
    ap.add_argument("--val-pairs", type=int, default=300, help="validation pairs per language")
    ap.add_argument("--max-length", type=int, default=128, help="token window while training")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--racs", type=int, default=0, help="RACS-augmented copies of each batch (0: plain contrastive)")
    ap.add_argument("--eval-every", type=int, default=25, help="steps between validation runs")
    ap.add_argument("--patience", type=int, default=3, help="validation runs without improvement before stopping")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--reference-only", action="store_true", help="only write the parity reference for the adapter at --out")
    args = ap.parse_args()
    if not (args.model_dir / "model.safetensors").exists():
        sys.exit(f"no model at {args.model_dir}: run `bitseek model fetch` first (or pass --model-dir)")
    ensure_venv()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    train(args)


def train(args) -> None:
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rnd = random.Random(args.seed)
    device = torch.device(args.device)

    tok = AutoTokenizer.from_pretrained(str(args.model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(args.model_dir), local_files_only=True).to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    if args.reference_only:
        from safetensors import safe_open

        with safe_open(str(args.out), "pt") as f:
            meta = f.metadata()
            adapters = attach(model, int(meta["rank"]), float(meta["alpha"]))
            for name, a in adapters.items():
                a.lora_A.data.copy_(f.get_tensor(f"{name}.lora_A"))
                a.lora_B.data.copy_(f.get_tensor(f"{name}.lora_B"))
        write_reference(args, pooled_embedder(tok, model, device), model)
        return
    adapters = attach(model, args.rank, args.alpha)
    params = [p for a in adapters.values() for p in (a.lora_A, a.lora_B)]
    print(f"{len(adapters)} adapted layers, {sum(p.numel() for p in params)} parameters", file=sys.stderr)

    langs = args.langs.split(",")
    train_pairs: list[tuple[str, list[dict]]] = []
    val: dict[str, list[dict]] = {}
    per_lang = args.pairs // len(langs) if args.pairs else 0
    for lang in langs:
        rows = sample(read_pairs(args.data / f"{lang}-train.jsonl"), per_lang, args.per_package, rnd)
        val[lang] = sample(read_pairs(args.data / f"{lang}-val.jsonl"), args.val_pairs, 0, random.Random(args.seed))
        print(f"{lang}: {len(rows)} train pairs, {len(val[lang])} val pairs", file=sys.stderr)
        # Batches of one language: in-batch negatives are then functions of the same language.
        for i in range(0, len(rows) - args.batch_size + 1, args.batch_size):
            train_pairs.append((lang, rows[i : i + args.batch_size]))

    embed = pooled_embedder(tok, model, device)

    @torch.no_grad()
    def validate() -> dict:
        model.eval()
        out = {}
        for lang, rows in val.items():
            q = torch.cat([embed([r["query"] for r in rows[i : i + 64]], args.max_length) for i in range(0, len(rows), 64)])
            c = torch.cat([embed([r["code"] for r in rows[i : i + 64]], args.max_length) for i in range(0, len(rows), 64)])
            s = q @ c.T
            rank = (s > s.diag().unsqueeze(1)).sum(1) + 1
            out[lang] = float((1.0 / rank.float()).mean())
        out["mean"] = sum(out[lang] for lang in val) / len(val)
        model.train()
        return out

    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    total = len(train_pairs) * args.epochs
    warmup = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    start = time.time()
    best = validate()
    print(f"step 0: val MRR {fmt(best)} (base model)", file=sys.stderr)
    best_state = {k: (a.lora_A.detach().clone(), a.lora_B.detach().clone()) for k, a in adapters.items()}
    best_step, stale, step, history = 0, 0, 0, [{"step": 0, **best}]
    model.train()
    stop = False
    for epoch in range(args.epochs):
        rnd.shuffle(train_pairs)
        for lang, batch in train_pairs:
            q = embed([r["query"] for r in batch], args.max_length)
            c = embed([r["code"] for r in batch], args.max_length)
            if args.racs:
                qs, cs = [q], [c]
                for _ in range(args.racs):
                    qa, ca = racs(q, c, rnd)
                    qs.append(qa)
                    cs.append(ca)
                q, c = torch.cat(qs), torch.cat(cs)
            logits = q @ c.T / args.temperature
            labels = torch.arange(len(q), device=device)
            loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 5 == 0:
                print(f"step {step}/{total} ({lang}) loss {loss.item():.4f} {time.time() - start:.0f}s", file=sys.stderr)
            if step % args.eval_every == 0 or step == total:
                v = validate()
                history.append({"step": step, **v})
                if v["mean"] > best["mean"]:
                    best, best_step, stale = v, step, 0
                    best_state = {k: (a.lora_A.detach().clone(), a.lora_B.detach().clone()) for k, a in adapters.items()}
                    # Written at each improvement, so a stopped run leaves its best adapter.
                    save(args, model, adapters, {
                        "best_step": best_step, "steps_run": step, "seconds": round(time.time() - start),
                        "val_mrr_base": history[0], "val_mrr_best": best, "history": history,
                    })
                else:
                    stale += 1
                print(f"step {step}: val MRR {fmt(v)}; best {fmt(best)} at step {best_step}", file=sys.stderr)
                if stale >= args.patience:
                    print(f"early stop: {stale} validation runs without improvement", file=sys.stderr)
                    stop = True
                    break
        if stop:
            break
    seconds = time.time() - start
    for k, a in adapters.items():
        a.lora_A.data.copy_(best_state[k][0])
        a.lora_B.data.copy_(best_state[k][1])

    save(args, model, adapters, {
        "best_step": best_step,
        "steps_run": step,
        "seconds": round(seconds),
        "val_mrr_base": history[0],
        "val_mrr_best": best,
        "history": history,
    })
    print(f"best step {best_step}, val MRR {fmt(best)}, {seconds:.0f}s", file=sys.stderr)
    if str(args.reference):
        write_reference(args, embed, model)


def pooled_embedder(tok, model, device):
    """Texts → mean-pooled, L2-normalised embeddings (what sentence-transformers does for MiniLM)."""
    import torch.nn.functional as F

    def embed(texts: list[str], max_length: int):
        enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
        out = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
        pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)

    return embed


def save(args, model, adapters: dict, run: dict) -> None:
    """Writes the adapter file: the factors (f32) and the metadata bitseek-embed checks."""
    from safetensors.torch import save_file

    tensors = {}
    for name, a in adapters.items():
        tensors[f"{name}.lora_A"] = a.lora_A.detach().float().cpu().contiguous()
        tensors[f"{name}.lora_B"] = a.lora_B.detach().float().cpu().contiguous()
    settings = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("model_dir", "out", "reference", "data", "device", "threads", "reference_only")
    }
    metadata = {
        "format": FORMAT,
        "rank": str(args.rank),
        "alpha": repr(float(args.alpha)),
        "base_model": args.model_dir.name,
        "base_sha256": sha256_file(args.model_dir / "model.safetensors"),
        # What bitseek-embed checks at load (cheap: it reads these tensors to merge anyway).
        "base_weights_sha256": base_weights_sha256(model, adapters),
        "modules": ",".join(adapters),
        "training": json.dumps({"settings": settings, **run}),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) at step {run['best_step']}", file=sys.stderr)


def base_weights_sha256(model, adapters: dict) -> str:
    """SHA-256 of the adapted layers' base weights, as little-endian f32 in the order of `adapters`."""
    h = hashlib.sha256()
    for a in adapters.values():
        h.update(a.base.weight.detach().float().cpu().numpy().astype("<f4").tobytes())
    return h.hexdigest()


def attach(model, rank: int, alpha: float) -> dict:
    """Wraps each target nn.Linear of every BERT layer in a LoRA layer; returns them by weight name."""
    out = {}
    for l, layer in enumerate(model.encoder.layer):
        for target in TARGETS:
            parent = layer
            *path, last = target.split(".")
            for p in path:
                parent = getattr(parent, p)
            lora = LoRALinear(getattr(parent, last), rank, alpha)
            setattr(parent, last, lora)
            out[f"encoder.layer.{l}.{target}"] = lora
    return out


def _lora_class():
    import torch
    from torch import nn

    class LoRALinear(nn.Module):
        """y = base(x) + (alpha / rank) · x Aᵀ Bᵀ: the frozen layer plus a trained low-rank delta.
        B starts at zero, so training starts from the base model."""

        def __init__(self, base: nn.Linear, rank: int, alpha: float):
            super().__init__()
            self.base = base
            self.scale = alpha / rank
            self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
            self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

        def forward(self, x):
            return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scale

    return LoRALinear


def LoRALinear(base, rank, alpha):  # noqa: N802 (built lazily: torch is imported in the venv)
    global _LoRA
    if "_LoRA" not in globals():
        _LoRA = _lora_class()
    return _LoRA(base, rank, alpha)


def racs(q, c, rnd: random.Random):
    """One RACS-augmented copy of a batch of pooled pairs (bitseek-learn's augment module): one of
    linear inter/extrapolation (λ ~ U(0.9, 1.1), same partner and λ for query and function), binary
    interpolation (per-dimension keep mask p = 0.75, different partners per side), Gaussian scaling
    (N(1, 0.1²) per element) and dropout (p = 0.1)."""
    import torch

    n, dim = q.shape
    op = rnd.choice(["linear", "binary", "gaussian", "dropout"])

    def partners():
        order = list(range(n))
        rnd.shuffle(order)
        out = [0] * n
        for i in range(n):
            out[order[i]] = order[(i + 1) % n]
        return torch.tensor(out, device=q.device)

    if op == "linear":
        j = partners()
        lam = torch.empty(n, 1, device=q.device).uniform_(0.9, 1.1)
        return lam * q + (1 - lam) * q[j], lam * c + (1 - lam) * c[j]
    if op == "binary":
        keep = (torch.rand(dim, device=q.device) < 0.75).to(q.dtype)
        return keep * q + (1 - keep) * q[partners()], keep * c + (1 - keep) * c[partners()]
    if op == "gaussian":
        return q * torch.normal(1.0, 0.1, q.shape, device=q.device), c * torch.normal(1.0, 0.1, c.shape, device=q.device)
    drop = torch.nn.functional.dropout
    return drop(q, 0.1), drop(c, 0.1)


def write_reference(args, embed, model) -> None:
    """Embeds the parity texts with the adapted model (adapter unmerged) in its 256-token window."""
    import sentence_transformers
    import torch

    items = json.loads(REFERENCE_IN.read_text(encoding="utf-8"))["items"]
    texts = [i["text"] for i in items]
    window = json.loads((args.model_dir / "sentence_bert_config.json").read_text())["max_seq_length"]
    model.eval()
    with torch.no_grad():
        vecs = torch.cat([embed(texts[i : i + 8], window) for i in range(0, len(texts), 8)]).cpu().numpy()
    with args.reference.open("w", encoding="utf-8") as f:
        f.write("{\n")
        f.write(
            f'"made_by": "scripts/train_adapter.py: transformers BertModel + LoRA applied unmerged, torch {torch.__version__} '
            f'(sentence-transformers {sentence_transformers.__version__} venv), mean pooling, window {window}",\n'
        )
        f.write(f'"adapter_sha256": "{sha256_file(args.out)}",\n')
        f.write('"items": [\n')
        for i, (t, v) in enumerate(zip(texts, vecs)):
            item = {"text": t, "vector": [round(float(x), 6) for x in v]}
            f.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")))
            f.write(",\n" if i + 1 < len(texts) else "\n")
        f.write("]\n}\n")
    print(f"wrote {args.reference}: {len(texts)} texts", file=sys.stderr)


def fmt(v: dict) -> str:
    return " ".join(f"{k} {x:.4f}" for k, x in v.items())


if __name__ == "__main__":
    main()
