"""What makes a chat conversation valid: its messages (roles, content, tool calls, weights) and
its tool definitions. Chat examples and both sides of a preference pair are checked here.

Findings follow formats.py's conventions: message numbers in sentences are 1-based
("message 2"), params are JSON paths with 0-based indexes ("messages[1].content").
"""

from __future__ import annotations

import json

from strop.data.records import json_type
from strop.data.report import Finding

ROLES = ("system", "user", "assistant", "tool", "function")
MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "weight", "tool_calls", "function_call", "refusal"},
    "tool": {"role", "content", "tool_call_id", "name"},
    "function": {"role", "content", "name"},
}


def unknown_keys(record: dict, allowed: set[str], where: str, param_prefix: str = "") -> list[Finding]:
    return [
        Finding("unknown_key", f"{param_prefix}{key}",
                f"{where}unknown key '{key}'",
                f"Remove '{key}'; allowed keys here are {', '.join(sorted(allowed))}.")
        for key in record if key not in allowed
    ]


def _text_of(content: object) -> str | None:
    """The text of a content value (string or list of text parts), None if ill-formed."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not (isinstance(part, dict) and part.get("type") == "text"
                    and isinstance(part.get("text"), str)):
                return None
            parts.append(part["text"])
        return "".join(parts)
    return None


def content_text(content: object) -> str:
    """Text of a valid content value; "" for None (assistant tool-call turns)."""
    text = _text_of(content)
    return text if text is not None else ""


def _check_content(message: dict, where: str, param: str, required: bool) -> list[Finding]:
    if "content" not in message or message["content"] is None:
        if required:
            return [Finding("missing_field", f"{param}.content", f"{where}no 'content'",
                            "Add a non-empty 'content' string.")]
        return []
    content = message["content"]
    text = _text_of(content)
    if text is None:
        if isinstance(content, list):
            return [Finding("wrong_type", f"{param}.content",
                            f"{where}'content' is a list but not of text parts",
                            'Use a string, or a list of {"type": "text", "text": "..."} parts.')]
        return [Finding("wrong_type", f"{param}.content",
                        f"{where}'content' is {json_type(content)}, expected a string",
                        "Make 'content' a string (or a list of text parts).")]
    if required and not text.strip():
        return [Finding("empty_field", f"{param}.content", f"{where}'content' is empty",
                        "Write the message text, or remove the message.")]
    return []


def _check_tool_calls(calls: object, where: str, param: str, ids: set[str]) -> list[Finding]:
    if not isinstance(calls, list) or not calls:
        return [Finding("wrong_type", param, f"{where}'tool_calls' must be a non-empty array",
                        'Use [{"id": "...", "type": "function", "function": {"name": "...", '
                        '"arguments": "{...}"}}].')]
    findings = []
    for index, call in enumerate(calls):
        call_where = f"{where}tool call {index + 1}: "
        call_param = f"{param}[{index}]"
        if not isinstance(call, dict):
            findings.append(Finding("wrong_type", call_param,
                                    f"{call_where}expected an object, found {json_type(call)}",
                                    "Each tool call is an object with id, type and function."))
            continue
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            findings.append(Finding("missing_field", f"{call_param}.id", f"{call_where}no 'id'",
                                    "Give each tool call a string 'id' that the tool message "
                                    "answering it repeats as 'tool_call_id'."))
        else:
            ids.add(call_id)
        if call.get("type", "function") != "function":
            findings.append(Finding("invalid_value", f"{call_param}.type",
                                    f"{call_where}'type' is {call.get('type')!r}",
                                    "Set 'type' to \"function\"."))
        function = call.get("function")
        if not isinstance(function, dict):
            findings.append(Finding("missing_field", f"{call_param}.function",
                                    f"{call_where}no 'function' object",
                                    'Add "function": {"name": "...", "arguments": "{...}"}.'))
            continue
        findings.extend(_check_function_call(function, call_where, f"{call_param}.function"))
    return findings


def _check_function_call(function: dict, where: str, param: str) -> list[Finding]:
    findings = []
    if not isinstance(function.get("name"), str) or not function.get("name"):
        findings.append(Finding("missing_field", f"{param}.name", f"{where}no function 'name'",
                                "Name the function that is called."))
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        findings.append(Finding("wrong_type", f"{param}.arguments",
                                f"{where}'arguments' is {json_type(arguments)}, expected a string",
                                'Encode the arguments as a JSON string, e.g. "{\\"city\\": \\"Oslo\\"}".'))
    else:
        try:
            json.loads(arguments)
        except json.JSONDecodeError as exc:
            findings.append(Finding("invalid_tool_arguments", f"{param}.arguments",
                                    f"{where}'arguments' is not valid JSON ({exc.msg} at column "
                                    f"{exc.colno})",
                                    "Make 'arguments' a JSON-encoded object string."))
    return findings


_PLAIN_ROLES = frozenset(("system", "user", "assistant"))


def _is_plain_message(message: object) -> bool:
    """{"role": system/user/assistant, "content": non-blank string} and nothing else: a message
    every check below passes (an assistant one trains, with the default weight 1)."""
    if type(message) is not dict or len(message) != 2:
        return False
    role, content = message.get("role"), message.get("content")
    return (type(role) is str and role in _PLAIN_ROLES and type(content) is str
            and content != "" and not content.isspace())


def check_messages(messages: object, param: str = "messages",
                   require_assistant: bool = True) -> list[Finding]:
    """Validate a chat message list; `param` is its JSON path."""
    if not isinstance(messages, list):
        return [Finding("wrong_type", param, f"'{param}' is {json_type(messages)}, expected an array",
                        'Use "messages": [{"role": "user", "content": "..."}, ...].')]
    if not messages:
        return [Finding("empty_field", param, f"'{param}' is empty",
                        "Add at least a user message and an assistant reply.")]
    findings: list[Finding] = []
    call_ids: set[str] = set()
    trained_assistant = False
    for index, message in enumerate(messages):
        if _is_plain_message(message):  # nearly every message: skip the checks it passes
            trained_assistant = trained_assistant or message["role"] == "assistant"
            continue
        where = f"message {index + 1}: "
        mparam = f"{param}[{index}]"
        if not isinstance(message, dict):
            findings.append(Finding("wrong_type", mparam,
                                    f"{where}expected an object, found {json_type(message)}",
                                    'Each message is {"role": ..., "content": ...}.'))
            continue
        role = message.get("role")
        if role is None:
            findings.append(Finding("missing_field", f"{mparam}.role", f"{where}no 'role'",
                                    f"Add 'role', one of {', '.join(ROLES)}."))
            continue
        if not isinstance(role, str) or role not in MESSAGE_KEYS:  # a list would not hash
            findings.append(Finding("unknown_role", f"{mparam}.role",
                                    f"{where}unknown role {role!r}",
                                    f"Use one of {', '.join(ROLES)}."))
            continue
        findings.extend(unknown_keys(message, MESSAGE_KEYS[role], where, f"{mparam}."))
        if "name" in message and not isinstance(message["name"], str):
            findings.append(Finding("wrong_type", f"{mparam}.name",
                                    f"{where}'name' is {json_type(message['name'])}, expected a string",
                                    "Make 'name' a string or remove it."))
        if role == "assistant":
            has_calls = "tool_calls" in message or "function_call" in message
            findings.extend(_check_content(message, where, mparam, required=not has_calls))
            if "tool_calls" in message:
                findings.extend(_check_tool_calls(message["tool_calls"], where,
                                                  f"{mparam}.tool_calls", call_ids))
            if "function_call" in message:
                if isinstance(message["function_call"], dict):
                    findings.extend(_check_function_call(message["function_call"], where,
                                                         f"{mparam}.function_call"))
                else:
                    findings.append(Finding("wrong_type", f"{mparam}.function_call",
                                            f"{where}'function_call' must be an object",
                                            'Use {"name": "...", "arguments": "{...}"}.'))
            weight = message.get("weight", 1)
            if "weight" in message and (isinstance(weight, bool) or weight not in (0, 1)):
                findings.append(Finding("invalid_weight", f"{mparam}.weight",
                                        f"{where}'weight' is {json.dumps(weight)}, must be 0 or 1",
                                        "Use 1 to train on this reply, 0 to skip it."))
            elif weight == 1:
                trained_assistant = True
        elif role == "tool":
            findings.extend(_check_content(message, where, mparam, required=False))
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                findings.append(Finding("missing_field", f"{mparam}.tool_call_id",
                                        f"{where}tool message without 'tool_call_id'",
                                        "Set 'tool_call_id' to the id of the assistant tool call "
                                        "this message answers."))
            elif call_id not in call_ids:
                findings.append(Finding("unmatched_tool_message", f"{mparam}.tool_call_id",
                                        f"{where}tool message answers call {call_id!r}, but no "
                                        "earlier assistant message made that call",
                                        "Put the assistant message with the matching tool_calls "
                                        "entry before this tool message, or fix the id."))
        elif role == "function":
            findings.extend(_check_content(message, where, mparam, required=False))
            if not isinstance(message.get("name"), str) or not message.get("name"):
                findings.append(Finding("missing_field", f"{mparam}.name",
                                        f"{where}function message without 'name'",
                                        "Name the function whose result this is."))
        else:
            findings.extend(_check_content(message, where, mparam, required=True))
    if require_assistant and not trained_assistant and not findings:
        findings.append(Finding("no_assistant_message", param,
                                "no assistant message to learn from",
                                "Add an assistant reply with weight 1 (the default); the model "
                                "is trained only on assistant messages."))
    return findings


def check_tools(record: dict, prefix: str = "") -> list[Finding]:
    findings = []
    if "tools" in record:
        tools = record["tools"]
        if not isinstance(tools, list):
            findings.append(Finding("wrong_type", f"{prefix}tools",
                                    f"'tools' is {json_type(tools)}, expected an array",
                                    'Use [{"type": "function", "function": {"name": ..., '
                                    '"parameters": {...}}}].'))
        else:
            for index, tool in enumerate(tools):
                function = tool.get("function") if isinstance(tool, dict) else None
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    findings.append(Finding("wrong_type", f"{prefix}tools[{index}]",
                                            f"tool {index + 1} is not a function definition "
                                            "with a name",
                                            'Use {"type": "function", "function": {"name": ..., '
                                            '"parameters": {...}}}.'))
    if "parallel_tool_calls" in record and not isinstance(record["parallel_tool_calls"], bool):
        findings.append(Finding("wrong_type", f"{prefix}parallel_tool_calls",
                                "'parallel_tool_calls' must be true or false",
                                "Use a JSON boolean."))
    return findings
