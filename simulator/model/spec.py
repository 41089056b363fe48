"""ModelSpec: a transformer's architecture as data (``model/specs/<name>.yaml`` or a HF config.json).

Only the facts a cost model needs: sizes, heads, MLP shape, vocabulary, experts, attention kind.
Parameter counts are derived from these facts, never typed in (tests compare them with the published
sizes).

Attention is grouped-query (``gqa``, which includes MHA and MQA) or multi-head latent attention (``mla``,
DeepSeek-V2/V3, arXiv:2405.04434): queries through an optional low-rank ``q_lora_rank``, keys and values
compressed to one ``kv_lora_rank`` latent plus one shared ``qk_rope_head_dim`` RoPE key per token, which
is what the KV cache holds.

Mixture-of-Experts layers (``num_experts`` > 0) replace the dense MLP: a router picks
``num_experts_per_token`` of ``num_experts`` gated experts of width ``moe_intermediate_size`` per token,
plus an always-on shared expert of width ``shared_expert_intermediate_size`` (0: none). The first
``num_dense_layers`` layers stay dense, and after them every ``moe_layer_step``-th layer is MoE (Llama-4
Maverick alternates: step 2); dense layers use ``intermediate_size``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ModelSpec(BaseModel):
    """A decoder-only transformer: GQA or MLA attention, dense or Mixture-of-Experts MLP."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    display_name: str = ""
    hf_id: str = Field("", description="Hugging Face repository the numbers come from")
    num_layers: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    num_kv_heads: int = Field(ge=1)
    head_dim: int = Field(ge=1)
    intermediate_size: int = Field(ge=1)
    vocab_size: int = Field(ge=1)
    max_position_embeddings: int = Field(ge=1)
    mlp_gated: bool = Field(True, description="SwiGLU-style gate+up+down (3 matrices) vs up+down (2)")
    tie_word_embeddings: bool = False
    attention_bias: bool = Field(False, description="bias vectors on Q, K and V projections (Qwen2)")
    qk_norm: bool = Field(False, description="RMSNorm on each head's q and k (Qwen3)")
    attention: Literal["gqa", "mla"] = Field("gqa", description="grouped-query or multi-head latent")
    q_lora_rank: int = Field(0, ge=0, description="MLA: low-rank query width (0: full-rank queries)")
    kv_lora_rank: int = Field(0, ge=0, description="MLA: compressed KV latent width (cached)")
    qk_nope_head_dim: int = Field(0, ge=0, description="MLA: per-head query/key width without RoPE")
    qk_rope_head_dim: int = Field(0, ge=0, description="MLA: RoPE key width, shared by heads (cached)")
    v_head_dim: int = Field(0, ge=0, description="MLA: per-head value width")
    num_experts: int = Field(0, ge=0, description="routed experts per MoE layer (0: dense model)")
    num_experts_per_token: int = Field(0, ge=0, description="top-k experts each token is routed to")
    moe_intermediate_size: int = Field(0, ge=0, description="width of one routed expert's MLP")
    shared_expert_intermediate_size: int = Field(0, ge=0, description="width of the shared expert(s)")
    num_dense_layers: int = Field(0, ge=0, description="leading layers with a dense MLP (DeepSeek: 3)")
    moe_layer_step: int = Field(1, ge=1, description="after the dense ones, every step-th layer is MoE")
    published_params: float | None = Field(None, description="published parameter count, for checks")
    published_active_params: float | None = Field(None, description="published active parameters per token")
    source: str = Field("", description="where the architecture numbers come from")

    @model_validator(mode="after")
    def _heads_group(self) -> ModelSpec:
        if self.num_attention_heads % self.num_kv_heads:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} must be a multiple of "
                f"num_kv_heads={self.num_kv_heads} (grouped-query attention)"
            )
        if self.attention == "mla" and min(self.kv_lora_rank, self.qk_rope_head_dim, self.v_head_dim) < 1:
            raise ValueError("attention 'mla' needs kv_lora_rank, qk_rope_head_dim and v_head_dim >= 1")
        if self.num_experts:
            if not 1 <= self.num_experts_per_token <= self.num_experts:
                raise ValueError(
                    f"num_experts_per_token={self.num_experts_per_token} must be in [1, {self.num_experts}]"
                )
            if self.moe_intermediate_size < 1:
                raise ValueError("a MoE model (num_experts > 0) needs moe_intermediate_size >= 1")
            if self.num_moe_layers < 1:
                raise ValueError("num_dense_layers and moe_layer_step leave no MoE layer")
        return self

    @property
    def is_moe(self) -> bool:
        """Whether some layers are Mixture-of-Experts."""
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        """Layers i >= num_dense_layers with (i + 1) % moe_layer_step == 0 (0 for a dense model)."""
        if not self.num_experts:
            return 0
        return sum(1 for i in range(self.num_layers) if self.is_moe_layer(i))

    def is_moe_layer(self, index: int) -> bool:
        """Whether layer ``index`` (0-based) has a MoE block rather than a dense MLP."""
        return (
            bool(self.num_experts)
            and index >= self.num_dense_layers
            and (index + 1) % self.moe_layer_step == 0
        )

    @property
    def num_dense_mlp_layers(self) -> int:
        """Layers with a dense MLP of ``intermediate_size``."""
        return self.num_layers - self.num_moe_layers

    @property
    def qk_head_dim(self) -> int:
        """Per-head query/key width: head_dim (GQA) or qk_nope_head_dim + qk_rope_head_dim (MLA)."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim if self.attention == "mla" else self.head_dim

    @property
    def kv_cache_elements_per_layer(self) -> int:
        """Cached elements per token and layer: 2 kv_heads head_dim (GQA) or kv_lora + rope (MLA)."""
        if self.attention == "mla":
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.num_kv_heads * self.head_dim

    @property
    def q_size(self) -> int:
        """Width of the query projection output (heads x head_dim)."""
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        """Width of one of the K or V projection outputs (kv_heads x head_dim)."""
        return self.num_kv_heads * self.head_dim

    @property
    def attention_params_per_layer(self) -> int:
        """Q, K, V, O weights (+ biases and q/k norms where the model has them); MLA: its projections."""
        if self.attention == "mla":
            return self._mla_params()
        h = self.hidden_size
        params = h * self.q_size + 2 * h * self.kv_size + self.q_size * h
        if self.attention_bias:
            params += self.q_size + 2 * self.kv_size
        if self.qk_norm:
            params += 2 * self.head_dim
        return params

    def _mla_params(self) -> int:
        """q (low-rank a, norm, b, or full), kv_a (latent + rope key), kv norm, kv_b, o."""
        h, n = self.hidden_size, self.num_attention_heads
        qk = self.qk_head_dim
        if self.q_lora_rank:
            q = h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * n * qk
        else:
            q = h * n * qk
        kv = h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
        kv += self.kv_lora_rank * n * (self.qk_nope_head_dim + self.v_head_dim)
        return q + kv + n * self.v_head_dim * h

    @property
    def num_mlp_matrices(self) -> int:
        """3 for a gated MLP (gate, up, down), 2 for a plain one."""
        return 3 if self.mlp_gated else 2

    @property
    def mlp_params_per_layer(self) -> int:
        """Gate, up and down projections of a dense layer (no gate when ``mlp_gated`` is false)."""
        return self.num_mlp_matrices * self.hidden_size * self.intermediate_size

    @property
    def expert_params(self) -> int:
        """One routed expert's weights."""
        return self.num_mlp_matrices * self.hidden_size * self.moe_intermediate_size

    @property
    def moe_params_per_layer(self) -> int:
        """Router, all routed experts and the shared expert of one MoE layer."""
        shared = self.num_mlp_matrices * self.hidden_size * self.shared_expert_intermediate_size
        return self.hidden_size * self.num_experts + self.num_experts * self.expert_params + shared

    @property
    def params_per_layer(self) -> int:
        """Attention + dense MLP + the two RMSNorm weight vectors (a dense layer)."""
        return self.attention_params_per_layer + self.mlp_params_per_layer + 2 * self.hidden_size

    def _layers_params(self, num_routed: int) -> int:
        common = self.attention_params_per_layer + 2 * self.hidden_size
        moe = self.moe_params_per_layer - (self.num_experts - num_routed) * self.expert_params
        return (
            self.num_layers * common
            + self.num_dense_mlp_layers * self.mlp_params_per_layer
            + self.num_moe_layers * moe
        )

    @property
    def embedding_params(self) -> int:
        """Input embedding table (vocab x hidden)."""
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        """Output projection to logits; zero extra parameters when tied to the embedding."""
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @property
    def num_params(self) -> int:
        """Total parameters: layers, embedding, LM head and the final norm."""
        return (
            self._layers_params(self.num_experts)
            + self.embedding_params
            + self.lm_head_params
            + self.hidden_size
        )

    @property
    def num_active_params(self) -> int:
        """Parameters one token uses: as ``num_params`` with only its top-k routed experts."""
        return (
            self._layers_params(self.num_experts_per_token)
            + self.embedding_params
            + self.lm_head_params
            + self.hidden_size
        )
