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
- rotary embeddings come from the model's own rotary module, so its scaling rules apply.

The weights are taken from the model's modules when a generation starts, never copied, so a
LoRA adapter merged into them (strop.serving.lora) is what that generation sees; a model
carrying unmerged adapter layers (PEFT) is refused rather than run without them. Architectures whose
arithmetic differs (other norms, activations, sliding windows, rope variants that depend on the
sequence length) are refused by `unsupported_reason` and fall back to the model's own forward.
"""

from __future__ import annotations

SUPPORTED_TYPES = ("llama", "mistral", "qwen2")
SUPPORTED_ROPE = ("default", "linear", "llama3")


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

    def __init__(self, module):
        self.weight = module.weight.detach()
        self.bias = None if module.bias is None else module.bias.detach()


class _Layer:
    """One decoder layer's weights as the generation starts."""

    def __init__(self, layer):
        attention, mlp = layer.self_attn, layer.mlp
        self.q, self.k, self.v, self.o = (_Weights(attention.q_proj), _Weights(attention.k_proj),
                                          _Weights(attention.v_proj), _Weights(attention.o_proj))
        self.gate, self.up, self.down = (_Weights(mlp.gate_proj), _Weights(mlp.up_proj),
                                         _Weights(mlp.down_proj))
        self.attention_norm = layer.input_layernorm.weight.detach().float()
        self.mlp_norm = layer.post_attention_layernorm.weight.detach().float()


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


def _rotate_half(x):
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Decoder:
    """Generates with a Llama-family transformers model; create with `Decoder(model)` after
    checking `unsupported_reason(model) is None`. One `Decoder` serves any number of
    generations one after another; each needs its own `session`."""

    def __init__(self, model):
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"The written-out decoder cannot run this model: {reason}.")
        import torch

        config = model.config
        self.model = model
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.hidden_size = config.hidden_size
        self.eps = config.rms_norm_eps
        self.layers = [_Layer(layer) for layer in model.model.layers]
        self.final_norm = model.model.norm.weight.detach().float()
        self.embeddings = model.model.embed_tokens.weight.detach()
        self.head = _Weights(model.lm_head)
        self.rotary = model.model.rotary_emb
        self.dtype = self.layers[0].q.weight.dtype if self.layers else torch.float32

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

    def forward(self, token_ids: list[int]):
        """Feed `token_ids` (the prompt, then one token at a time); return the float32 logits
        of the last one."""
        import torch

        d = self.decoder
        count, start = len(token_ids), self.position
        end = start + count
        if end > self.capacity:
            raise ValueError(f"The generation is {end} tokens long, past the {self.capacity} "
                             "this session was made for.")
        if count > 1 and start:
            raise ValueError("Only the first call of a session may pass several tokens.")
        heads, kv_heads, head_dim = d.heads, d.kv_heads, d.head_dim
        group = heads // kv_heads
        scale = head_dim ** -0.5
        with torch.inference_mode():
            x = d.embeddings[token_ids].float()
            cos = self.cos[start:end, None]
            sin = self.sin[start:end, None]
            for index, layer in enumerate(d.layers):
                h = _matmul_input(d._norm(x, layer.attention_norm), d.dtype)
                q = _linear(h, layer.q).view(count, heads, head_dim)
                k = _linear(h, layer.k).view(count, kv_heads, head_dim)
                v = _linear(h, layer.v).view(count, kv_heads, head_dim)
                q = q * cos + _rotate_half(q) * sin
                k = k * cos + _rotate_half(k) * sin
                keys, values = self.keys[index], self.values[index]
                keys[:, start:end] = k.transpose(0, 1)
                values[:, start:end] = v.transpose(0, 1)
                if count == 1:
                    scores = torch.bmm(q.view(kv_heads, group, head_dim),
                                       keys[:, :end].transpose(1, 2)).mul_(scale)
                    attended = torch.bmm(torch.softmax(scores, -1), values[:, :end])
                else:
                    attended = torch.nn.functional.scaled_dot_product_attention(
                        q.transpose(0, 1), keys[:, :end], values[:, :end], is_causal=True,
                        enable_gqa=kv_heads != heads)
                    attended = attended.transpose(0, 1)
                attended = attended.reshape(count, heads * head_dim)
                x = x + _linear(_matmul_input(attended, d.dtype), layer.o)
                h = _matmul_input(d._norm(x, layer.mlp_norm), d.dtype)
                gated = torch.nn.functional.silu(_linear(h, layer.gate)) * _linear(h, layer.up)
                x = x + _linear(_matmul_input(gated, d.dtype), layer.down)
            h = d._norm(x[-1:], d.final_norm)
            logits = _linear(_matmul_input(h, d.head.weight.dtype), d.head)[0]
        self.position = end
        return logits
