"""ModelSpec: a transformer's architecture as data (``model/specs/<name>.yaml`` or a HF config.json).

Only the facts a cost model needs: sizes, heads, MLP shape, vocabulary. Parameter counts are derived
from these facts, never typed in (tests compare them with the published sizes).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ModelSpec(BaseModel):
    """A dense decoder-only transformer (GQA attention, gated or plain MLP)."""

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
    published_params: float | None = Field(None, description="published parameter count, for checks")
    source: str = Field("", description="where the architecture numbers come from")

    @model_validator(mode="after")
    def _heads_group(self) -> ModelSpec:
        if self.num_attention_heads % self.num_kv_heads:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} must be a multiple of "
                f"num_kv_heads={self.num_kv_heads} (grouped-query attention)"
            )
        return self

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
        """Q, K, V, O weights (+ biases and q/k norms where the model has them)."""
        h = self.hidden_size
        params = h * self.q_size + 2 * h * self.kv_size + self.q_size * h
        if self.attention_bias:
            params += self.q_size + 2 * self.kv_size
        if self.qk_norm:
            params += 2 * self.head_dim
        return params

    @property
    def mlp_params_per_layer(self) -> int:
        """Gate, up and down projections (no gate when ``mlp_gated`` is false)."""
        num_matrices = 3 if self.mlp_gated else 2
        return num_matrices * self.hidden_size * self.intermediate_size

    @property
    def params_per_layer(self) -> int:
        """Attention + MLP + the two RMSNorm weight vectors."""
        return self.attention_params_per_layer + self.mlp_params_per_layer + 2 * self.hidden_size

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
            self.num_layers * self.params_per_layer
            + self.embedding_params
            + self.lm_head_params
            + self.hidden_size
        )
