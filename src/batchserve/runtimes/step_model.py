"""The runtime contract for models that produce their output one step at a time.

A step model is an ordinary `ModelInstance` whose artifact runs one step of a
recurrent decoder on a batch of sequences, each with its own state:

    inputs:  tokens  int64 [B, T]   tokens to feed, right-padded
             lengths int32 [B]      how many of each row's tokens are real (>= 1)
             state   float [L, B, H] each sequence's state before this call
    outputs: logits  float [B, V]   next-token logits after each row's last real token
             state_out float [L, B, H]

A prompt is fed in one call (T = its length: the prefill); then one token per
call (T = 1: a decode step). Sequences of a call need not be at the same position:
each row carries its own state, so sequences join and leave a batch between any
two calls. `StepModel` stacks the sequences' states into one call and splits the
result back; it keeps no queue and makes no scheduling decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from batchserve.config import StepTensorNames
from batchserve.errors import InferenceError, ModelLoadError
from batchserve.runtimes.base import ModelInstance


@dataclass(eq=False)
class SequenceState:
    """One sequence between two calls: its model state and the tokens still to feed."""

    state: np.ndarray  # [L, H]: this sequence's rows of the model state
    pending: list[int]  # tokens not fed yet: the prompt, then the last sampled token
    position: int = 0  # tokens fed so far
    generated: list[int] = field(default_factory=list)  # sampled tokens, EOS excluded


class StepModel:
    """A loaded step model: `init_state` for a prompt, `step` for a batch of sequences,
    `finished` for the stop rule (end token or the token limit)."""

    def __init__(
        self,
        instance: ModelInstance,
        *,
        eos_token: int,
        bos_token: int | None = None,
        names: StepTensorNames | None = None,
    ) -> None:
        self.instance = instance
        self.names = names or StepTensorNames()
        self.eos_token = eos_token
        self.bos_token = bos_token
        specs = {s.name: s for s in instance.inputs}
        outputs = {s.name: s for s in instance.outputs}
        n = self.names
        missing = [x for x in (n.tokens, n.lengths, n.state) if x not in specs]
        missing += [x for x in (n.logits, n.state_out) if x not in outputs]
        if missing:
            raise ModelLoadError(
                f"not a step model: no tensor(s) {missing}; a step model takes "
                f"{n.tokens!r}, {n.lengths!r}, {n.state!r} and returns {n.logits!r}, "
                f"{n.state_out!r} (model.yaml generate.tensors renames them)"
            )
        state = specs[n.state]
        if len(state.shape) != 3 or state.shape[0] < 1 or state.shape[2] < 1:
            raise ModelLoadError(
                f"state input {n.state!r} must be [layers, batch, hidden] with fixed "
                f"layers and hidden, not {list(state.shape)}"
            )
        self.state_shape = (state.shape[0], state.shape[2])
        self.state_dtype = state.dtype
        self.lengths_dtype = specs[n.lengths].dtype
        self.vocab_size = outputs[n.logits].shape[-1]

    def init_state(self, prompt: Sequence[int]) -> SequenceState:
        """A new sequence: zero state, the prompt (after the start token) to feed."""
        tokens = list(prompt)
        if self.bos_token is not None:
            tokens.insert(0, self.bos_token)
        if not tokens:
            raise ValueError("an empty prompt needs a start token (model.yaml bos_token)")
        return SequenceState(state=np.zeros(self.state_shape, self.state_dtype), pending=tokens)

    def step(self, sequences: Sequence[SequenceState]) -> np.ndarray:
        """Feed every sequence its pending tokens in one runtime call; update each one's
        state and position in place and return next-token logits, one row per sequence."""
        lengths = np.array([len(s.pending) for s in sequences], self.lengths_dtype)
        longest = int(lengths.max())
        if longest == 1:  # a decode step: one token each, the common case
            tokens = np.array([s.pending for s in sequences], np.int64)
        else:
            tokens = np.zeros((len(sequences), longest), np.int64)
            for row, s in enumerate(sequences):
                tokens[row, : len(s.pending)] = s.pending
        n = self.names
        outputs = self.instance.run(
            {
                n.tokens: tokens,
                n.lengths: lengths,
                n.state: np.stack([s.state for s in sequences], axis=1),
            }
        )
        logits, state = outputs[n.logits], outputs[n.state_out]
        if logits.shape[0] != len(sequences) or state.shape[1] != len(sequences):
            raise InferenceError(
                f"the step model broke its contract: {len(sequences)} sequences in, logits "
                f"{list(logits.shape)} and state {list(state.shape)} out"
            )
        for row, s in enumerate(sequences):
            s.state = state[:, row]  # a view; the next call's stack copies it
            s.position += len(s.pending)
            s.pending = []
        return logits

    def append(self, sequence: SequenceState, token: int) -> None:
        """Record a sampled token; unless it ends the sequence, it is fed next."""
        if token != self.eos_token:
            sequence.generated.append(token)
        sequence.pending = [token]

    def finished(self, sequence: SequenceState, token: int, max_tokens: int) -> str | None:
        """Why the sequence stops after `token`: "stop" (end token), "length", or None."""
        if token == self.eos_token:
            return "stop"
        if len(sequence.generated) >= max_tokens:
            return "length"
        return None
