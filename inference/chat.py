"""Chat prompts: render a GGUF ``tokenizer.chat_template`` the way transformers does.

The template is Jinja2, run in a sandbox (``ImmutableSandboxedEnvironment``, as
transformers' ``apply_chat_template``) with ``trim_blocks``/``lstrip_blocks``, the
variables ``messages``, ``bos_token``, ``eos_token`` and ``add_generation_prompt``, the
``raise_exception`` and ``strftime_now`` helpers and a ``tojson`` filter that keeps
non-ASCII text.

A file without a template gets :data:`FALLBACK_TEMPLATE`, a plain transcript::

    <system text>

    User: <user text>
    Assistant: <assistant text>
    User: <user text>
    Assistant:

and generation stops at :data:`FALLBACK_STOPS` so the model does not write the next
user turn itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROLES = ("system", "user", "assistant")

FALLBACK_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% else %}Assistant: {{ m['content'] }}\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
#: Stop strings that go with the fallback template.
FALLBACK_STOPS = ("\nUser:",)


class ChatTemplateError(ValueError):
    """The template cannot be compiled or rendered, or the messages are malformed."""


def validate_messages(messages: object) -> list[dict[str, str]]:
    """``messages`` as a list of ``{"role", "content"}`` dicts; ValueError naming the bad one."""
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        raise ChatTemplateError("messages must be a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise ChatTemplateError(f"messages[{i}] must be an object with role and content")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise ChatTemplateError(f"messages[{i}].role must be one of {ROLES}, got {role!r}")
        if not isinstance(content, str):
            raise ChatTemplateError(f"messages[{i}].content must be a string")
        out.append({"role": role, "content": content})
    return out


def render_chat(
    messages: Sequence[Mapping[str, str]],
    template: str | None = None,
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text for ``messages``; ``template=None`` uses :data:`FALLBACK_TEMPLATE`."""
    msgs = validate_messages(messages)
    compiled = _compile(template or FALLBACK_TEMPLATE)
    try:
        return compiled.render(
            messages=msgs,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
        )
    except jinja2.TemplateError as e:
        raise ChatTemplateError(f"tokenizer.chat_template failed to render: {e}") from e


def stops_for(template: str | None) -> tuple[str, ...]:
    """Extra stop strings for a template: the fallback's, none for a model's own."""
    return () if template else FALLBACK_STOPS


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)


def _tojson(x: object, indent: int | None = None) -> str:
    return json.dumps(x, ensure_ascii=False, indent=indent)


@lru_cache(maxsize=8)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template)
    except jinja2.TemplateError as e:
        raise ChatTemplateError(f"tokenizer.chat_template is not valid Jinja2: {e}") from e
