"""Which tokens carry loss, checked token by token on real chat-template families."""

from __future__ import annotations

import copy

import pytest

from strop.models.tiny import CHATML_TEMPLATE, build_tokenizer
from strop.data.masking import tokenize_chat, tokenize_prompt_completion, tokenize_text
from strop.train.packing import IGNORE, pack, shifted_targets

LLAMA3 = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + '</s>' }}"
    "{% endif %}{% endfor %}"
)
QWEN = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
GEMMA = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)
TEMPLATES = {
    # name: (template, end-of-turn token, text the template puts before an answer's content)
    "chatml-smollm2": (CHATML_TEMPLATE, "<|im_end|>", ""),
    "llama3": (LLAMA3, "<|eot_id|>", ""),
    "mistral": (MISTRAL, "</s>", " "),
    "qwen": (QWEN, "<|im_end|>", ""),
    "gemma": (GEMMA, "<end_of_turn>", ""),
}
EXTRA_SPECIAL = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "</s>",
                 "<start_of_turn>", "<end_of_turn>", "[INST]", "[/INST]"]

CONVERSATION = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And two plus two?"},
    {"role": "assistant", "content": "Four, thank you."},
]


@pytest.fixture(scope="module")
def base_tokenizer():
    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": EXTRA_SPECIAL})
    return tokenizer


def tokenizer_with(base_tokenizer, template: str):
    tokenizer = copy.deepcopy(base_tokenizer)
    tokenizer.chat_template = template
    return tokenizer


def trained_runs(tokens) -> list[list[int]]:
    """Maximal runs of consecutive trained positions, as token id lists."""
    runs, current = [], []
    for token, trained in zip(tokens.input_ids, tokens.trained):
        if trained:
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def conversation_for(name: str) -> list[dict]:
    # Mistral's template has no system role.
    return [m for m in CONVERSATION if name != "mistral" or m["role"] != "system"]


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_loss_covers_exactly_each_answer_and_its_end_of_turn_token(base_tokenizer, name):
    template, end_token, lead = TEMPLATES[name]
    tokenizer = tokenizer_with(base_tokenizer, template)
    tokens = tokenize_chat(tokenizer, conversation_for(name))

    rendered = tokenizer.apply_chat_template(conversation_for(name), tokenize=False)
    assert tokens.input_ids == tokenizer(rendered, add_special_tokens=False)["input_ids"]
    runs = trained_runs(tokens)
    assert [tokenizer.decode(run) for run in runs] == [
        f"{lead}Paris.{end_token}", f"{lead}Four, thank you.{end_token}"]
    end_id = tokenizer.convert_tokens_to_ids(end_token)
    assert [run[-1] for run in runs] == [end_id, end_id]
    # Nothing outside the answers is trained: the count of trained tokens is exactly the
    # answers' tokens plus one end-of-turn token each.
    expected = sum(len(tokenizer(f"{lead}{text}", add_special_tokens=False)["input_ids"]) + 1
                   for text in ("Paris.", "Four, thank you."))
    assert sum(tokens.trained) == expected


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_weight_zero_answer_is_context_only(base_tokenizer, name):
    template, end_token, lead = TEMPLATES[name]
    tokenizer = tokenizer_with(base_tokenizer, template)
    messages = copy.deepcopy(conversation_for(name))
    messages[[i for i, m in enumerate(messages) if m["role"] == "assistant"][0]]["weight"] = 0
    runs = trained_runs(tokenize_chat(tokenizer, messages))
    assert [tokenizer.decode(run) for run in runs] == [f"{lead}Four, thank you.{end_token}"]


def test_smollm2_pad_equal_to_eos_never_hides_the_end_token(base_tokenizer):
    """SmolLM2 ships pad == eos == <|im_end|>; the end token must still be a target."""
    tokenizer = tokenizer_with(base_tokenizer, CHATML_TEMPLATE)
    tokenizer.pad_token = tokenizer.eos_token
    tokens = tokenize_chat(tokenizer, CONVERSATION[:3])
    batch = pack([tokens, tokenize_chat(tokenizer, CONVERSATION)], tokenizer.pad_token_id)
    targets = batch.targets[batch.targets != IGNORE].tolist()
    assert targets.count(tokenizer.eos_token_id) == 3  # one answer + two answers


def test_prompt_completion_trains_on_completion_and_eos(base_tokenizer):
    tokens = tokenize_prompt_completion(base_tokenizer, "Two plus two is", " four.")
    trained = [t for t, on in zip(tokens.input_ids, tokens.trained) if on]
    assert base_tokenizer.decode(trained) == " four.<|im_end|>"
    assert not tokens.trained[0]


def test_text_trains_every_token(base_tokenizer):
    tokens = tokenize_text(base_tokenizer, "The quick brown fox.")
    assert all(tokens.trained) and tokens.input_ids[-1] == base_tokenizer.eos_token_id


def test_shifted_targets_predict_the_next_trained_token():
    from strop.data.masking import Tokenized

    targets = shifted_targets(Tokenized([10, 11, 12, 13], [False, False, True, True]))
    assert targets == [IGNORE, 12, 13, IGNORE]


def test_content_parts_and_tool_calls_are_trained_as_text(base_tokenizer):
    tokenizer = tokenizer_with(base_tokenizer, CHATML_TEMPLATE)
    call = {"type": "function", "function": {"name": "lookup", "arguments": "{\"id\": 7}"}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "Find order 7"}]},
                {"role": "assistant", "content": None, "tool_calls": [call]}]
    runs = trained_runs(tokenize_chat(tokenizer, messages))
    assert [tokenizer.decode(r) for r in runs] == [
        '[{"name": "lookup", "arguments": "{\\"id\\": 7}"}]<|im_end|>']


@pytest.mark.parametrize("record", [
    {"input": {"messages": [{"role": "user", "content": "Ready?"}]},
     "preferred_output": [{"role": "assistant", "content": "Yes."}],
     "non_preferred_output": [{"role": "assistant", "content": "No."}]},
    {"input": {"messages": [{"role": "user", "content": "Ready?"}]},
     "preferred_completion": "Yes.", "non_preferred_completion": "No."},
])
def test_preference_spellings_train_only_the_two_answers(base_tokenizer, record):
    from strop.train.records import tokenize_records

    tokenizer = tokenizer_with(base_tokenizer, CHATML_TEMPLATE)
    (pair,) = tokenize_records([record], tokenizer, "dpo", "prefs.jsonl")
    assert [tokenizer.decode(r) for r in trained_runs(pair.chosen)] == ["Yes.<|im_end|>"]
    assert [tokenizer.decode(r) for r in trained_runs(pair.rejected)] == ["No.<|im_end|>"]


def test_a_record_of_the_wrong_kind_is_named(base_tokenizer):
    from strop.train.config import TrainingError
    from strop.train.records import tokenize_records

    with pytest.raises(TrainingError, match="prefs.jsonl: Line 2: a chat example cannot be "
                                            "used for method 'dpo'"):
        tokenize_records([{"input": {"messages": [{"role": "user", "content": "a"}]},
                           "preferred_completion": "b", "non_preferred_completion": "c"},
                          {"messages": [{"role": "user", "content": "a"}]}],
                         base_tokenizer, "dpo", "prefs.jsonl")


# A template that writes tool calls in its own markup (as Qwen 2.5 and Llama 3.1 do).
TOOL_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] %}{{ message['content'] }}{% endif %}"
    "{% for call in message.tool_calls or [] %}{{ '<tool_call>' + call.function.name + ' '"
    " + call.function.arguments + '</tool_call>' }}{% endfor %}{{ '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CALL = {"id": "c1", "type": "function",
        "function": {"name": "lookup", "arguments": "{\"id\": 7}"}}
COUNTED = {
    "plain": CONVERSATION,
    "tool calls": [{"role": "user", "content": "Find order 7"},
                   {"role": "assistant", "content": None, "tool_calls": [CALL]},
                   {"role": "tool", "tool_call_id": "c1", "content": "shipped"},
                   {"role": "assistant", "content": "Order 7 has shipped."}],
    "legacy function_call": [{"role": "user", "content": "Find order 7"},
                             {"role": "assistant", "content": None,
                              "function_call": CALL["function"]},
                             {"role": "function", "name": "lookup", "content": "shipped"},
                             {"role": "assistant", "content": "Order 7 has shipped."}],
    "parts and weight 0": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                           {"role": "assistant", "content": "Hello!", "weight": 0},
                           {"role": "user", "content": "Two plus two?"},
                           {"role": "assistant", "content": [{"type": "text", "text": "Four."}]}],
}


@pytest.mark.parametrize("conversation", sorted(COUNTED))
@pytest.mark.parametrize("name", sorted(TEMPLATES) + ["tool-calls"])
def test_token_counts_are_exactly_what_the_mask_trains(base_tokenizer, name, conversation):
    """The estimate's counter and the training mask render a conversation one way."""
    from strop.data.tokens import TokenCounter

    template = TOOL_TEMPLATE if name == "tool-calls" else TEMPLATES[name][0]
    tokenizer = tokenizer_with(base_tokenizer, template)
    messages = [m for m in COUNTED[conversation] if name != "mistral" or m["role"] != "system"]
    tokens = tokenize_chat(tokenizer, messages)
    (count,) = TokenCounter(tokenizer).count([{"messages": messages}], "chat")
    assert (count.total, count.trained) == (len(tokens), sum(tokens.trained))
    assert count.prompt == count.total - count.trained


def test_tool_calls_train_in_the_templates_own_markup_where_it_has_one(base_tokenizer):
    tokenizer = tokenizer_with(base_tokenizer, TOOL_TEMPLATE)
    runs = trained_runs(tokenize_chat(tokenizer, COUNTED["tool calls"]))
    assert [tokenizer.decode(r) for r in runs] == [
        '<tool_call>lookup {"id": 7}</tool_call><|im_end|>', "Order 7 has shipped.<|im_end|>"]


def test_a_legacy_function_call_trains_like_a_tool_call(base_tokenizer):
    tokenizer = tokenizer_with(base_tokenizer, CHATML_TEMPLATE)
    runs = trained_runs(tokenize_chat(tokenizer, COUNTED["legacy function_call"]))
    assert tokenizer.decode(runs[0]) == '[{"name": "lookup", "arguments": "{\\"id\\": 7}"}]<|im_end|>'


@pytest.mark.parametrize("name", ["chatml-smollm2", "mistral"])
def test_preference_counts_are_the_two_sequences_dpo_trains(base_tokenizer, name):
    from strop.data.tokens import TokenCounter
    from strop.train.records import tokenize_records

    tokenizer = tokenizer_with(base_tokenizer, TEMPLATES[name][0])
    record = {"input": {"messages": [{"role": "user", "content": "Ready?"},
                                     {"role": "assistant", "content": "Almost."},
                                     {"role": "user", "content": "Now?"}]},
              # both spellings: a list of messages, and the older plain string
              "preferred_output": [{"role": "assistant", "content": "Yes, ready."}],
              "non_preferred_completion": "No."}
    (pair,) = tokenize_records([record], tokenizer, "dpo", "prefs.jsonl")
    (count,) = TokenCounter(tokenizer).count([record], "preference")
    assert count.total == len(pair.chosen) + len(pair.rejected)
    assert count.trained == sum(pair.chosen.trained) + sum(pair.rejected.trained)
