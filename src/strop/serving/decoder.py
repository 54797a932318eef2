"""A written-out forward pass for Llama-family models, for generating one token at a time fast.

Why not the model's own forward: a decode step of a small model on a CPU reads every weight
once (bound by memory bandwidth) and runs ~40 small operations per layer, and the transformers
forward adds its own per-layer bookkeeping (cache objects, mask builders, dtype round trips) that
costs as much again as the arithmetic for a 135M model. This module is the same arithmetic with
less around it:

- the KV cache is preallocated for the whole generation and written in place;
- decode attention is two batched matmuls over the heads that share a key/value head;
- activations, norms and attention stay in float32, and only the weights are in the serving
  precision: a half-precision weight is multiplied as it is when one token is decoded (the
  matrix-vector product is limited by reading the weights, which halves), and converted to
  float32 first when a whole prompt is processed (this CPU has no half-precision matrix units, so
  a half-precision matrix-matrix product is many times slower than converting);
- q/k/v and gate/up run as one product each when their weights are adjacent (the serving engine
  arranges that with `join_projections`);
- rotary embeddings come from the model's own rotary module, so its scaling rules apply; a
  decode step applies them as one small matrix product on queries and keys together.

The weights are taken from the model's modules when a generation starts, never copied, so a
LoRA adapter merged into them (strop.serving.lora) is what that generation sees; a model
carrying unmerged adapter layers (PEFT) is refused rather than run without them.
Architectures whose arithmetic differs (other norms, activations, sliding windows, rope variants
that depend on the sequence length) are refused by `unsupported_reason` and fall back to the
model's own forward.
"""

from __future__ import annotations

SUPPORTED_TYPES = ("llama", "mistral", "qwen2")
SUPPORTED_ROPE = ("default", "linear", "llama3")


class UnsupportedModel(ValueError):
    """The model's arithmetic is not what this decoder computes; use the model's own forward."""


def unsupported_reason(model) -> str | None:
    """Why this model cannot use the written-out decoder, or None when it can."""
    import torch

    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_TYPES:
        return f"architecture '{model_type}' is not one of {', '.join(SUPPORTED_TYPES)}"
    if not hasattr(model, "model") or not hasattr(model.model, "rotary_emb"):
        return "the model has no rotary embedding module where Llama keeps it"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation '{config.hidden_act}' is not silu"
    if getattr(config, "mlp_bias", False):
        return "MLP layers with biases"
    if getattr(config, "use_sliding_window", False) or (
            model_type == "mistral" and getattr(config, "sliding_window", None)):
        return "sliding-window attention"
    for module in _projections(model):
        if type(module) is not torch.nn.Linear:
            return (f"{type(module).__name__} in place of a Linear layer (e.g. an unmerged "
                    "adapter)")
    if any(m._forward_hooks or m._forward_pre_hooks for m in model.modules()):
        return "forward hooks on its modules, which a written-out forward would skip"
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in SUPPORTED_ROPE:
        return f"rope type '{rope_type}' depends on the sequence length"
    return None


def _projections(model):
    yield model.lm_head
    for layer in model.model.layers:
        attention, mlp = layer.self_attn, layer.mlp
        yield from (attention.q_proj, attention.k_proj, attention.v_proj, attention.o_proj,
                    mlp.gate_proj, mlp.up_proj, mlp.down_proj)


class _Weights:
    """A Linear layer's weight and bias as plain tensors, taken when a generation starts."""

    __slots__ = ("weight", "bias")

    def __init__(self, weight, bias=None):
        self.weight = weight
        self.bias = bias

    @classmethod
    def of(cls, module) -> "_Weights":
        return cls(module.weight.detach(), None if module.bias is None else module.bias.detach())


def _joined(parts: list[_Weights]) -> _Weights | None:
    """One projection for layers that share an input, when their weights are adjacent rows of
    one tensor (see `join_projections`); None when they are not."""
    import torch

    first = parts[0].weight
    offset = first.storage_offset()
    for part in parts:
        weight = part.weight
        if (weight.dtype != first.dtype or not weight.is_contiguous()
                or weight.shape[1:] != first.shape[1:] or weight.storage_offset() != offset
                or weight.untyped_storage().data_ptr() != first.untyped_storage().data_ptr()):
            return None
        offset += weight.numel()
    rows = sum(part.weight.shape[0] for part in parts)
    weight = first.as_strided((rows, first.shape[1]), (first.shape[1], 1))
    biases = [part.bias for part in parts]
    if all(bias is None for bias in biases):
        return _Weights(weight)
    if any(bias is None for bias in biases):
        return None
    return _Weights(weight, torch.cat(biases))


class _Layer:
    """One decoder layer's weights as the generation starts."""

    def __init__(self, layer):
        attention, mlp = layer.self_attn, layer.mlp
        self.qkv = [_Weights.of(attention.q_proj), _Weights.of(attention.k_proj),
                    _Weights.of(attention.v_proj)]
        self.o = _Weights.of(attention.o_proj)
        self.gate_up = [_Weights.of(mlp.gate_proj), _Weights.of(mlp.up_proj)]
        self.down = _Weights.of(mlp.down_proj)
        self.qkv_joined = _joined(self.qkv)
        self.gate_up_joined = _joined(self.gate_up)
        self.attention_norm = layer.input_layernorm.weight.detach().float()
        self.mlp_norm = layer.post_attention_layernorm.weight.detach().float()


def join_projections(model) -> list[tuple[str, ...]]:
    """Store each layer's q/k/v weights, and its gate/up weights, as adjacent rows of one tensor
    (the modules keep working on views of it), so that a decode step runs one matrix-vector
    product for each group instead of three and two. Returns the module paths of each group,
    which strop.serving.lora keeps adjacent when it merges an adapter."""
    import torch

    names = {id(module): name for name, module in model.named_modules()}
    groups = []
    with torch.no_grad():
        for layer in model.model.layers:
            attention, mlp = layer.self_attn, layer.mlp
            for modules in ((attention.q_proj, attention.k_proj, attention.v_proj),
                            (mlp.gate_proj, mlp.up_proj)):
                joined = torch.cat([module.weight.data for module in modules])
                offset = 0
                for module in modules:
                    rows = module.weight.shape[0]
                    module.weight.data = joined[offset:offset + rows]
                    offset += rows
                groups.append(tuple(names[id(module)] for module in modules))
    _return_freed_memory()
    return groups


def _return_freed_memory() -> None:
    """Hand the replaced per-layer tensors' memory back to the OS: glibc keeps freed heap
    blocks of this size for reuse, which shows as ~140 MB more resident memory for the 135M
    model in bfloat16 until something else reuses them. A no-op where libc has no malloc_trim."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _matmul_input(x, dtype):
    """`x` in the weights' precision for a one-token step, in float32 for a prompt (see the
    module's docstring); converted once for the projections that share an input."""
    return x.to(dtype) if x.shape[0] == 1 else x


def _linear(x, module):
    """`module(x)` in float32, for `x` prepared by `_matmul_input`."""
    import torch.nn.functional as F

    weight, bias = module.weight, module.bias
    if weight.dtype != x.dtype:
        x, weight = x.float(), weight.float()
    if bias is not None and bias.dtype != x.dtype:
        bias = bias.to(x.dtype)
    return F.linear(x, weight, bias).float()


def _project(x, parts: list[_Weights], joined: _Weights | None):
    import torch

    if joined is not None:
        return _linear(x, joined)
    return torch.cat([_linear(x, part) for part in parts], dim=-1)


def _rotate_half(x):
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rotation_half_matrix(size: int):
    """R with x @ R == concat(-x[half:], x[:half]) (Llama's rotate_half), so that a rotary
    embedding is one matrix product: x * cos + rotate_half(x) * sin == x @ (diag(cos) + R sin)."""
    import torch

    half = size // 2
    rotation = torch.zeros(size, size)
    rotation[half:, :half] = -torch.eye(half)
    rotation[:half, half:] = torch.eye(half)
    return rotation


class Decoder:
    """Generates with a Llama-family transformers model; create with `Decoder(model)` after
    checking `unsupported_reason(model) is None`. One `Decoder` serves any number of
    generations one after another; each needs its own `session`."""

    def __init__(self, model):
        reason = unsupported_reason(model)
        if reason is not None:
            raise UnsupportedModel(f"The written-out decoder cannot run this model: {reason}.")
        import torch

        config = model.config
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.layers = [_Layer(layer) for layer in model.model.layers]
        self.final_norm = model.model.norm.weight.detach().float()
        self.embeddings = model.model.embed_tokens.weight.detach()
        self.head = _Weights.of(model.lm_head)
        self.rotary = model.model.rotary_emb
        self.dtype = self.layers[0].o.weight.dtype if self.layers else torch.float32

    def session(self, capacity: int) -> "DecodeSession":
        """A generation of at most `capacity` tokens, prompt included."""
        return DecodeSession(self, capacity)

    def _norm(self, x, weight):
        import torch

        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * weight


class DecodeSession:
    """The KV cache and position of one generation."""

    def __init__(self, decoder: Decoder, capacity: int):
        import torch

        self.decoder = decoder
        self.capacity = capacity
        self.position = 0
        shape = (len(decoder.layers), decoder.kv_heads, capacity, decoder.head_dim)
        self.keys = torch.empty(shape)
        self.values = torch.empty(shape)
        positions = torch.arange(capacity)[None]
        cos, sin = decoder.rotary(torch.zeros(1), positions)
        self.cos, self.sin = cos[0].float(), sin[0].float()
        self.rotate_half = _rotation_half_matrix(decoder.head_dim)
        self.no_bias = torch.zeros(1, 1, 1)  # baddbmm's ignored input (beta=0)

    def forward(self, token_ids: list[int]):
        """Feed `token_ids` (the prompt, then one token at a time); return the float32 logits
        of the last one."""
        return self.logits(token_ids, 1)[0]

    def logits(self, token_ids: list[int], keep: int):
        """`forward`, returning the float32 logits of the last `keep` tokens, one row each."""
        import torch

        d = self.decoder
        count, start = len(token_ids), self.position
        end = start + count
        if end > self.capacity:
            raise ValueError(f"The generation is {end} tokens long, past the {self.capacity} "
                             "this session was made for.")
        if count > 1 and start:
            raise ValueError("Only the first call of a session may pass several tokens.")
        with torch.inference_mode():
            cos, sin = self.cos[start:end, None], self.sin[start:end, None]
            if count == 1:
                # one (head_dim x head_dim) rotation for this position, shared by every layer
                rotate = torch.diag_embed(cos[0, 0]) + self.rotate_half * sin[0]
                rotary = lambda qk: torch.mm(qk[0], rotate)[None]  # noqa: E731
            else:
                rotary = lambda qk: qk * cos + _rotate_half(qk) * sin  # noqa: E731
            x = d.embeddings[token_ids].float()  # a copy (indexing), so added to in place
            for index, layer in enumerate(d.layers):
                x.add_(self._attention(index, layer, d._norm(x, layer.attention_norm), rotary))
                x.add_(self._mlp(layer, d._norm(x, layer.mlp_norm)))
            h = d._norm(x[-keep:], d.final_norm)
            logits = _linear(_matmul_input(h, d.head.weight.dtype), d.head)
        self.position = end
        return logits

    def _attention(self, index: int, layer: _Layer, h, rotary):
        import torch

        d = self.decoder
        count, start = h.shape[0], self.position
        end = start + count
        heads, kv_heads, head_dim = d.heads, d.kv_heads, d.head_dim
        qkv = _project(_matmul_input(h, d.dtype), layer.qkv, layer.qkv_joined)
        # queries and keys are adjacent in qkv: one rotary embedding for both
        rotated = (heads + kv_heads) * head_dim
        qk = rotary(qkv[:, :rotated].view(count, heads + kv_heads, head_dim))
        q, k = qk[:, :heads], qk[:, heads:]
        v = qkv[:, rotated:].view(count, kv_heads, head_dim)
        keys, values = self.keys[index], self.values[index]
        keys[:, start:end] = k.transpose(0, 1)
        values[:, start:end] = v.transpose(0, 1)
        if count == 1:
            # the query heads that share a key/value head attend as one batch
            scores = torch.baddbmm(self.no_bias, q.reshape(kv_heads, heads // kv_heads, head_dim),
                                   keys[:, :end].transpose(1, 2), beta=0,
                                   alpha=head_dim ** -0.5)
            attended = torch.bmm(torch.softmax(scores, -1), values[:, :end])
        else:
            attended = torch.nn.functional.scaled_dot_product_attention(
                q.transpose(0, 1), keys[:, :end], values[:, :end], is_causal=True,
                enable_gqa=kv_heads != heads).transpose(0, 1)
        attended = attended.reshape(count, heads * head_dim)
        return _linear(_matmul_input(attended, d.dtype), layer.o)

    def _mlp(self, layer: _Layer, h):
        import torch

        dtype = self.decoder.dtype
        h = _matmul_input(h, dtype)
        gate, up = _project(h, layer.gate_up, layer.gate_up_joined).chunk(2, dim=-1)
        return _linear(_matmul_input(torch.nn.functional.silu(gate).mul_(up), dtype), layer.down)
