"""Pack token sequences into rows without padding waste and without cross-example attention.

Each sequence keeps positions 0..n-1 inside its row. With no attention mask given, transformers
reads a reset of position_ids as the start of a new sequence and builds a block-diagonal causal
mask, so packed sequences cannot see each other and every sequence gets the same loss it would
get alone. Rows are filled first-fit-decreasing up to the longest sequence's length, so the
only padding is the rest of a row that no remaining sequence fits into.
"""

from __future__ import annotations

from dataclasses import dataclass

from strop.data.masking import Tokenized

IGNORE = -100


def shifted_targets(sequence: Tokenized) -> list[int]:
    """Next-token labels of one sequence: targets[t] = ids[t+1] where that token is trained."""
    ids, trained = sequence.input_ids, sequence.trained
    return [ids[t + 1] if trained[t + 1] else IGNORE for t in range(len(ids) - 1)] + [IGNORE]


@dataclass
class PackedBatch:
    input_ids: object  # LongTensor rows x length
    position_ids: object
    targets: object  # IGNORE where no loss
    sequence_index: object  # which input sequence each token belongs to, -1 for padding
    n_sequences: int
    tokens: int  # real (non-padding) tokens
    target_tokens: int

    def to(self, device) -> "PackedBatch":
        return PackedBatch(self.input_ids.to(device), self.position_ids.to(device),
                           self.targets.to(device), self.sequence_index.to(device),
                           self.n_sequences, self.tokens, self.target_tokens)


def pack(sequences: list[Tokenized], pad_id: int, row_length: int | None = None) -> PackedBatch:
    import torch

    longest = max(len(s) for s in sequences)
    capacity = max(longest, row_length or 0)
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    rows: list[list[int]] = []
    room: list[int] = []
    for index in order:
        size = len(sequences[index])
        for row, free in enumerate(room):
            if free >= size:
                rows[row].append(index)
                room[row] -= size
                break
        else:
            rows.append([index])
            room.append(capacity - size)
    width = max(capacity - free for free in room)

    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    owner = torch.full((len(rows), width), -1, dtype=torch.long)
    for row, members in enumerate(rows):
        start = 0
        for index in sorted(members):  # file order inside a row: packing is deterministic
            sequence = sequences[index]
            end = start + len(sequence)
            input_ids[row, start:end] = torch.tensor(sequence.input_ids)
            positions[row, start:end] = torch.arange(len(sequence))
            targets[row, start:end] = torch.tensor(shifted_targets(sequence))
            owner[row, start:end] = index
            start = end
        # Padding is a sequence of its own (positions restart), so it attends only to itself.
        positions[row, start:] = torch.arange(width - start)
    tokens = sum(len(s) for s in sequences)
    return PackedBatch(input_ids, positions, targets, owner, len(sequences), tokens,
                       int((targets != IGNORE).sum()))
