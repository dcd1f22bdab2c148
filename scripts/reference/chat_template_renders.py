#!/usr/bin/env python3
"""Reference renders of real chat templates, made with jinja2 the way transformers 4.46's
apply_chat_template makes them (utils/chat_template_utils.py, _compile_jinja_template and
tokenization_utils_base.apply_chat_template), without needing transformers itself:

  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                extensions=[AssistantTracker, jinja2.ext.loopcontrols])
  filters["tojson"]  = json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...)
  globals["raise_exception"] raises TemplateError(message)
  globals["strftime_now"](fmt) = now.strftime(fmt)   (here: a pinned date, PINNED_NOW)
  render(messages=..., tools=None, documents=None, add_generation_prompt=..., bos_token=..., eos_token=...)

Templates: tests/fixtures/chat_templates/templates/*.jinja (the 70 of the llama-cpp-python
source archive, see scripts/vendor-llama-cpp; "set": "archive") and extra/*.jinja (SmolLM2-135M-Instruct's
own, from its GGUF tokenizer.chat_template; "set": "extra").
Output: tests/fixtures/chat_templates/renders.json.
Usage: python3 scripts/reference/chat_template_renders.py [--check]
(--check: regenerate in memory and fail if the committed file differs.)
"""
import json
import sys
from datetime import datetime
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "chat_templates"
PINNED_NOW = datetime(2024, 7, 26, 14, 30, 0)  # what strftime_now sees
BOS, EOS = "<s>", "</s>"  # passed to every template (their models' own tokens are not known here)

CONVERSATIONS = {
    "user_only": [{"role": "user", "content": "Hello! How are you?"}],
    "system_user": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "multi_turn": [
        {"role": "user", "content": "Hi there."},
        {"role": "assistant", "content": "Hello! How can I help you today?"},
        {"role": "user", "content": "Tell me a joke about cats."},
    ],
    "system_multi_turn": [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Good morning"},
        {"role": "assistant", "content": "Bonjour !"},
        {"role": "user", "content": "  How do I say 'thank you'?\n"},
    ],
    "assistant_last": [
        {"role": "user", "content": "Say hi."},
        {"role": "assistant", "content": "Hi!"},
    ],
    "unicode": [{"role": "user", "content": "Grüße aus Köln — 你好, мир! 🎉👩‍💻 \"quoted\" & <tag> \\ back\tslash"}],
    "braces": [
        {"role": "user", "content": "Print {{ messages }} and {% if x %}this{% endif %} {# not a comment #} '}}'"}
    ],
}
# Tool definitions, in the key order fleet gives the template (tools/tool_calls.h): "type",
# "function" {"name", "description", "parameters"}, the parameters' keys sorted.
def _tool(name, description, parameters):
    return {"type": "function", "function": {"name": name, "description": description,
                                             "parameters": json.loads(json.dumps(parameters, sort_keys=True))}}


TOOLS = [
    _tool("get_weather", "Get the current weather in a city",
          {"type": "object", "properties": {"city": {"type": "string", "description": "The city"},
                                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["city"]}),
    _tool("add", "Add two integers",
          {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}),
]
# Conversations with tools, as OpenAI clients send them (a call's arguments as JSON text; ids of 9
# letters and digits, as Mistral's templates require). Rendered with the arguments as objects
# (what fleet and vLLM give templates) and tools=TOOLS.
_CALL = {"id": "abcXYZ123", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}
TOOL_CONVERSATIONS = {
    "tools_ask": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the weather in Paris?"},
    ],
    "tools_call_and_result": [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [_CALL]},
        {"role": "tool", "tool_call_id": "abcXYZ123", "content": "{\"temperature\": 18}"},
    ],
    "tools_answered": [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [_CALL]},
        {"role": "tool", "tool_call_id": "abcXYZ123", "content": "{\"temperature\": 18}"},
        {"role": "assistant", "content": "It is 18 degrees in Paris."},
        {"role": "user", "content": "Thanks!"},
    ],
}


def for_template(messages):
    """OpenAI messages as fleet gives them to templates: a call's arguments as an object, and the
    null content of a turn of calls as "" (as llama.cpp's server does: many templates test
    `'x' in content` or concatenate it)."""
    out = json.loads(json.dumps(messages))
    for m in out:
        for c in m.get("tool_calls") or []:
            c["function"]["arguments"] = json.loads(c["function"]["arguments"])
        if "tool_calls" in m and m.get("content") is None:
            m["content"] = ""
    return out


# add_generation_prompt values rendered for each conversation (a finished assistant turn is
# rendered without a generation prompt only).
GEN_PROMPT = {name: [True, False] for name in CONVERSATIONS}
GEN_PROMPT["assistant_last"] = [False]


class AssistantTracker(jinja2.ext.Extension):
    """transformers' {% generation %} ... {% endgeneration %} tag; outside training-mask use it
    renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _generation_support(self, context, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return PINNED_NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render_all():
    env = make_env()
    templates = []
    paths = [("archive", p) for p in sorted((FIXTURES / "templates").glob("*.jinja"))]
    paths += [("extra", p) for p in sorted((FIXTURES / "extra").glob("*.jinja"))]
    for kind, path in paths:
        source = path.read_text(encoding="utf-8")
        entry = {"name": path.stem, "set": kind, "file": f"{path.parent.name}/{path.name}", "renders": []}
        try:
            compiled = env.from_string(source)
        except Exception as e:  # a template jinja2 cannot parse
            entry["compile_error"] = f"{type(e).__name__}: {e}"
            templates.append(entry)
            continue
        def render(messages, agp, tools):
            return compiled.render(messages=for_template(messages), tools=tools, documents=None,
                                   add_generation_prompt=agp, bos_token=BOS, eos_token=EOS)

        # Templates that write tools into the prompt (fleet's probe: one user turn with and
        # without a tool renders differently) are rendered with the tool conversations too.
        probe = [{"role": "user", "content": "Hi"}]
        try:
            with_tools = render(probe, True, TOOLS[:1])
            try:
                entry["renders_tools"] = with_tools != render(probe, True, None)
            except Exception:
                entry["renders_tools"] = True  # it needs tools
        except Exception:
            entry["renders_tools"] = False
        if entry["renders_tools"]:
            entry["tool_renders"] = []
            for conv, messages in TOOL_CONVERSATIONS.items():
                r = {"conversation": conv, "add_generation_prompt": True}
                try:
                    r["rendered"] = render(messages, True, TOOLS)
                except Exception as e:
                    r["error"] = f"{type(e).__name__}: {e}"
                entry["tool_renders"].append(r)
        for conv, messages in CONVERSATIONS.items():
            for agp in GEN_PROMPT[conv]:
                r = {"conversation": conv, "add_generation_prompt": agp}
                try:
                    r["rendered"] = compiled.render(
                        messages=json.loads(json.dumps(messages)),
                        tools=None,
                        documents=None,
                        add_generation_prompt=agp,
                        bos_token=BOS,
                        eos_token=EOS,
                    )
                except Exception as e:
                    r["error"] = f"{type(e).__name__}: {e}"
                entry["renders"].append(r)
        templates.append(entry)
    return {
        "generator": "scripts/reference/chat_template_renders.py",
        "jinja2": jinja2.__version__,
        "strftime_now": PINNED_NOW.isoformat(),
        "bos_token": BOS,
        "eos_token": EOS,
        "documents": None,
        "conversations": CONVERSATIONS,
        "tools": TOOLS,
        "tool_conversations": TOOL_CONVERSATIONS,
        "templates": templates,
    }


def main():
    out = FIXTURES / "renders.json"
    text = json.dumps(render_all(), ensure_ascii=False, indent=1) + "\n"
    if "--check" in sys.argv[1:]:
        if out.read_text(encoding="utf-8") != text:
            sys.exit(f"{out} differs from a fresh rendering")
        print(f"{out}: up to date")
        return
    out.write_text(text, encoding="utf-8")
    data = json.loads(text)
    n = len(data["templates"])
    rendered = sum(1 for t in data["templates"] for r in t["renders"] if "rendered" in r)
    errors = sum(1 for t in data["templates"] for r in t["renders"] if "error" in r)
    bad = [t["name"] for t in data["templates"] if "compile_error" in t]
    print(f"{out}: {n} templates, {rendered} renders, {errors} errors, compile errors: {bad}")


if __name__ == "__main__":
    main()
